"""The delivery record: which Message-IDs the SMTP server accepted, so that a retry never sends one again."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


# A claim refreshed within this many seconds belongs to an attempt that may still be sending (kept alive every
# KEEP_ALIVE seconds while it does); an older one was left by an attempt that died.
KEEP_ALIVE = 5.0
CLAIM_ALIVE = 30.0


class ClaimHeld(Exception):
    """Another attempt at the same email may still be sending: this one must not, and is retried later."""

    def __init__(self, message_id: str, age: float) -> None:
        self.message_id = message_id
        super().__init__(
            f"{message_id} is being sent by another attempt (its claim was renewed {age:.0f} s ago); "
            "this attempt waits for it and is retried"
        )
        self.permanent, self.uncertain = False, False


class RecordUnavailable(OSError):
    """The delivery record cannot be read or written now (its database is down): a passing failure. Before a
    send nothing is sent (retried later); after one, the order's notes say a retry could send it again."""

    permanent, uncertain = False, False


@dataclass(frozen=True)
class Accepted:
    message_id: str
    accepted: list[str]
    subject: str


class DeliveryLog:
    """One small file per Message-ID in a directory shared by every worker (same host, or a shared filesystem
    with atomic rename). Written the moment the server says 250, before anything else can fail."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._clock: tuple[float, float] | None = None  # (monotonic, file system time) when last read

    def check(self) -> None:
        """The directory is there (made at start): nothing to wait for."""

    def _path(self, message_id: str, suffix: str) -> Path:
        return self.directory / (hashlib.sha256(message_id.encode()).hexdigest()[:40] + suffix)

    def accepted(self, message_id: str) -> Accepted | None:
        try:
            data = json.loads(self._path(message_id, ".sent").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return Accepted(message_id=data["message_id"], accepted=data["accepted"], subject=data["subject"])

    def claim(self, message_id: str) -> bool:
        """Mark a send as under way; True if an earlier attempt got this far and never recorded the outcome
        (it died between connecting and the server's answer: the message may have gone out). An earlier attempt
        that may still be running (its claim was kept alive within CLAIM_ALIVE) is not inherited: ClaimHeld.
        Taking over a dead claim is atomic: of two attempts finding it, one gets it, the other ClaimHeld."""
        path = self._path(message_id, ".sending")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return False
        except FileExistsError:
            pass
        try:
            age = self._now() - path.stat().st_mtime
        except FileNotFoundError:  # released meanwhile: ours now, if nobody else is quicker
            return self._claim_fresh(message_id, path)
        if age < CLAIM_ALIVE:
            raise ClaimHeld(message_id, age)
        taken = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            os.rename(path, taken)  # only one attempt can move the dead claim away
        except FileNotFoundError:
            raise ClaimHeld(message_id, 0) from None
        taken.unlink()
        self._claim_fresh(message_id, path)
        return True

    def _claim_fresh(self, message_id: str, path: Path) -> bool:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise ClaimHeld(message_id, 0) from None
        return False

    def _now(self) -> float:
        """The clock the claims' times come from: the file system's (on a shared one, its server's), read by touching
        a file beside them (once a minute; this host's clock only measures the time since); never this host's own
        clock alone, which may run ahead of another worker's."""
        if self._clock is None or time.monotonic() - self._clock[0] > 60:
            clock = self.directory / ".clock"
            clock.touch()
            self._clock = (time.monotonic(), clock.stat().st_mtime)
        read_at, file_time = self._clock
        return file_time + (time.monotonic() - read_at)

    def keep_alive(self, message_id: str) -> None:
        """Called while a send runs (every few seconds): its claim stays fresh, so no other attempt takes it."""
        try:
            os.utime(self._path(message_id, ".sending"))
        except FileNotFoundError:
            pass

    def abandon(self, message_id: str) -> None:
        """This attempt is over without knowing whether the server kept the message: the claim stays, as no longer
        anyone's (older than CLAIM_ALIVE, far younger than what prune removes), so the next attempt takes it at once
        and reports a possible duplicate."""
        path = self._path(message_id, ".sending")
        try:
            stale = path.stat().st_mtime - CLAIM_ALIVE - 1
            os.utime(path, (stale, stale))
        except FileNotFoundError:
            pass

    def release(self, message_id: str) -> None:
        """The attempt failed before the server accepted anything: the next one is a clean retry."""
        self._path(message_id, ".sending").unlink(missing_ok=True)

    def record(self, message_id: str, everyone: list[str], subject: str) -> None:
        """Who has it now: everyone accepted, on this attempt and before (a retry for those a 4xx put off)."""
        final = self._path(message_id, ".sent")
        partial = final.with_suffix(f".{os.getpid()}.part")
        with partial.open("w", encoding="utf-8") as file:
            json.dump({"message_id": message_id, "accepted": everyone, "subject": subject}, file)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(final)
        self._path(message_id, ".sending").unlink(missing_ok=True)

    def close(self) -> None:
        pass

    def prune(self, older_than_days: float = 30) -> int:
        """Records outlive every retry by far; older ones can go."""
        limit, removed = time.time() - older_than_days * 86400, 0
        for path in self.directory.iterdir():
            if path.name != ".clock" and path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class DeliveryRecord(Protocol):
    """What sending needs of a delivery record: the directory (one host, or a shared file system) or PostgreSQL."""

    def check(self) -> None: ...
    def accepted(self, message_id: str) -> Accepted | None: ...
    def claim(self, message_id: str) -> bool: ...
    def keep_alive(self, message_id: str) -> None: ...
    def abandon(self, message_id: str) -> None: ...
    def release(self, message_id: str) -> None: ...
    def record(self, message_id: str, everyone: list[str], subject: str) -> None: ...
    def prune(self, older_than_days: float = 30) -> int: ...
    def close(self) -> None: ...
