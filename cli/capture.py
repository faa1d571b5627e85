"""A local SMTP capture server (aiosmtpd): accepts every message, keeps it, and writes it to an outbox as .eml."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class CapturedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


class CaptureHandler:
    """aiosmtpd handler: every accepted message is kept in memory and, with an outbox, written as one .eml file."""

    def __init__(self, outbox: Path | None = None) -> None:
        self.outbox = outbox
        self.messages: list[CapturedMessage] = []
        self._lock = threading.Lock()
        self._count = 0
        if outbox is not None:  # its messages hold working Approve links: the user's alone to read
            outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
            outbox.chmod(0o700)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        captured = CapturedMessage(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), data=data)
        with self._lock:
            self._count += 1
            number = self._count
            self.messages.append(captured)
        if self.outbox is not None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            final = self.outbox / f"{stamp}-{os.getpid()}-{number:06d}.eml"
            partial = final.with_suffix(".eml.part")
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
                file.write(data)
            partial.replace(final)  # readers of the outbox never see half a message
        return "250 Message accepted for delivery"


class SmtpCapture:
    """Runs the capture in a thread of its own, so it keeps answering whatever the caller's event loop does."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1025, outbox: Path | None = None) -> None:
        self.host, self.port = host, port
        self.handler = CaptureHandler(outbox)
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[CapturedMessage]:
        return self.handler.messages

    def start(self) -> SmtpCapture:
        # SMTPUTF8 as Postfix and most relays offer it today: international addresses arrive as written.
        self._controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=10, enable_SMTPUTF8=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
