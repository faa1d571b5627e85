"""The print room's bounce mailbox over IMAP (imap-tools, blocking: run in a thread). Only what the watcher needs:
log in, list the messages not yet looked at, fetch the first bytes of each, and move, delete or mark them."""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
from dataclasses import dataclass

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError

from printroom.activities.tls import verifying_context
from printroom.settings import BounceSettings

log = logging.getLogger("printroom.bounces")

# An IMAP keyword on what the watcher read and left in place (auto-replies, people's mail): not read again.
LOOKED_AT = "$PrintroomIgnored"
_FETCHED = re.compile(rb"UID (\d+)")
FETCH_CHUNK = 25


class MailboxRefused(Exception):
    """The server answered but will not let us in (credentials, a folder that does not exist): retrying at once
    would not help; the next poll tries again."""


class MailboxUnreachable(Exception):
    """No answer, or a TLS failure: said with the host and port."""


@dataclass(frozen=True)
class Fetched:
    uid: str
    raw: bytes  # the message's first `read_bytes`


class BounceMailbox:
    """One IMAP session: opened by `open()`, closed by `close()`; every error said in words."""

    def __init__(self, settings: BounceSettings) -> None:
        self.settings = settings
        self._box: BaseMailBox | None = None
        self._delimiter = "/"

    @property
    def name(self) -> str:
        s = self.settings
        return f"{s.username} at {s.host}:{s.effective_port}, folder {s.folder}"

    def open(self) -> BounceMailbox:
        s = self.settings
        where = f"IMAP {s.host}:{s.effective_port} ({s.security})"
        try:
            self._box = self._connect()
        except ssl.SSLError as error:
            raise MailboxUnreachable(f"{where}: TLS failed ({error.reason or error}); check bounces.ca_file and bounces.security") from None
        except (OSError, ImapToolsError) as error:  # refused, timeout, name not resolved, a greeting that is not IMAP
            raise MailboxUnreachable(f"{where} cannot be reached ({_why(error)}); is the server up, and bounces.host/port right?") from None
        try:
            self._log_in(self._box, s.username, s.secret())
        except (MailboxLoginError, imaplib.IMAP4.error) as error:
            self.close()
            raise MailboxRefused(
                f"{where} refused the login of {s.username!r} ({_said(error)}); check bounces.username and the password "
                "(PRINTROOM_BOUNCES__PASSWORD or bounces.password_file)"
            ) from None
        except (OSError, ImapToolsError) as error:
            self.close()
            raise MailboxUnreachable(f"{where}: the connection failed during login ({_why(error)})") from None
        listed = self._box.folder.list("", "")
        self._delimiter = listed[0].delim if listed and listed[0].delim not in ("", "NIL") else "/"
        try:
            self._box.folder.set(self._folder(s.folder))
        except ImapToolsError as error:
            self.close()
            raise MailboxRefused(f"{where}: folder {s.folder!r} cannot be opened ({_said(error)}); check bounces.folder") from None
        return self

    @staticmethod
    def _log_in(box: BaseMailBox, username: str, password: str) -> None:
        """AUTHENTICATE PLAIN (RFC 4616: a UTF-8 password works) where offered, else LOGIN (ASCII only)."""
        if "AUTH=PLAIN" in box.client.capabilities:
            box.client.authenticate("PLAIN", lambda _: f"\0{username}\0{password}".encode("utf-8"))
        elif not (username + password).isascii():
            raise MailboxLoginError(("NO", [b"the server offers only LOGIN, which takes no non-ASCII user name or password"]), "OK")
        else:
            box.login(username, password, initial_folder=None)

    def _connect(self) -> BaseMailBox:
        s = self.settings
        if s.security == "none":
            return MailBoxUnencrypted(s.host, s.effective_port, timeout=s.timeout_seconds)
        context = verifying_context(s.ca_file)
        if s.security == "starttls":
            return MailBoxStartTls(s.host, s.effective_port, timeout=s.timeout_seconds, ssl_context=context)
        return MailBox(s.host, s.effective_port, timeout=s.timeout_seconds, ssl_context=context)

    def close(self) -> None:
        if self._box is not None:
            try:
                self._box.logout()
            except (OSError, ImapToolsError, AttributeError):  # gone already: nothing to tidy
                pass
            self._box = None

    @property
    def box(self) -> BaseMailBox:
        if self._box is None:
            raise RuntimeError("the bounce mailbox is not open")
        return self._box

    def _folder(self, name: str) -> str:
        """A folder as the settings write it (`Printroom/Processed`) in the server's own hierarchy delimiter."""
        return name.replace("/", self._delimiter)

    def waiting(self, limit: int) -> tuple[list[str], bool]:
        """The oldest `limit` messages not looked at yet, and whether more wait."""
        uids = self.box.uids(f"UNDELETED UNKEYWORD {LOOKED_AT}")
        return uids[:limit], len(uids) > limit

    def fetch(self, uids: list[str], read_bytes: int) -> list[Fetched]:
        """The first `read_bytes` of each message (BODY.PEEK: not marked seen), whatever the message's size."""
        fetched: list[Fetched] = []
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = ",".join(uids[start : start + FETCH_CHUNK])
            answer = self.box.client.uid("FETCH", chunk, f"(UID BODY.PEEK[]<0.{read_bytes}>)")
            _ok(answer, f"fetch messages {chunk}")
            for item in answer[1]:
                if isinstance(item, tuple) and (uid := _FETCHED.search(item[0])):
                    fetched.append(Fetched(uid.group(1).decode(), item[1]))
        return fetched

    def move(self, uids: list[str], folder: str) -> None:
        """Into `folder`, made if missing (MOVE, or COPY then delete where the server has no MOVE)."""
        if not uids:
            return
        target = self._folder(folder)
        if not self.box.folder.exists(target):
            self.box.folder.create(target)
        self.box.move(uids, target)

    def delete(self, uids: list[str]) -> None:
        """These messages only: UID EXPUNGE (RFC 4315) where offered. Without it, an EXPUNGE would remove every
        message marked deleted in the folder, someone else's too: ours stay marked (never read again: `waiting`
        skips them) until the mailbox's own clean-up expunges them."""
        if not uids:
            return
        _ok(self.box.client.uid("STORE", ",".join(uids), "+FLAGS", r"(\Deleted)"), "mark processed bounces deleted")
        try:  # asked, not looked up: imaplib keeps the capabilities said before login, where UIDPLUS may be missing
            self.box.client.uid("EXPUNGE", ",".join(uids))
        except imaplib.IMAP4.error as error:
            log.info("bounce mailbox: UID EXPUNGE refused (%s); processed bounces stay marked deleted", error)

    def mark_looked_at(self, uids: list[str]) -> None:
        """Left in place, unread as they were, and skipped by the next polls."""
        if uids:
            answer = self.box.client.uid("STORE", ",".join(uids), "+FLAGS", f"({LOOKED_AT})")
            _ok(answer, f"keep the keyword {LOOKED_AT} on messages left in place (they would be read at every poll)")


def _ok(answer: tuple[str, list[object]], what: str) -> None:
    if answer[0] != "OK":
        raise MailboxRefused(f"the IMAP server refused to {what}: {_said(answer[1])}")


def _said(error: object) -> str:
    """The server's own words (imap-tools keeps the command's response)."""
    text = str(error)
    found = re.findall(r"\[?[A-Z]+\]?[^'\"\]]*(?:failed|invalid|refused|denied|exist)[^'\"]*", text, re.IGNORECASE)
    return (found[0] if found else text)[:300]


def _why(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error)[:300] or type(error).__name__

