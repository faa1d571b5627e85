"""SMTP transport: hands a built message to the configured server and says whether a failure is worth retrying."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from functools import cached_property

import aiosmtplib

from printroom.settings import SmtpSettings


class DeliveryError(Exception):
    """The server did not take the message. `permanent` failures need a person; the others pass with time."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    accepted: list[str]
    # Recipients the server refused while it accepted others: address -> the server's reply.
    refused: dict[str, str]


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


class SmtpTransport:
    """One connection per message for now; the SMTP settings issue adds TLS, authentication and reuse."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @cached_property
    def local_hostname(self) -> str:
        """Our EHLO name, looked up once: aiosmtplib would call getfqdn() for every connection."""
        return socket.getfqdn()

    async def send(self, message: bytes, *, envelope_from: str, recipients: list[str]) -> Delivery:
        try:
            refused, _ = await aiosmtplib.send(
                message,
                local_hostname=self.local_hostname,
                sender=envelope_from,
                recipients=recipients,
                hostname=self.settings.host,
                port=self.settings.port,
                timeout=self.settings.timeout_seconds,
                start_tls=False,
                use_tls=False,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            replies = {r.recipient: _reply(r.code, r.message) for r in error.recipients}
            permanent = all(r.code >= 500 for r in error.recipients)
            raise DeliveryError(f"{self.server} refused every recipient: {replies}", permanent=permanent) from None
        except aiosmtplib.SMTPResponseException as error:
            permanent = error.code >= 500
            advice = "fix the settings or the address" if permanent else "it will be retried"
            raise DeliveryError(
                f"{self.server} answered {_reply(error.code, error.message)}; {advice}", permanent=permanent
            ) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryError(
                f"cannot reach the SMTP server {self.server}: {error or type(error).__name__}; it will be retried",
                permanent=False,
            ) from None
        refused_replies = {address: _reply(code, text) for address, (code, text) in refused.items()}
        return Delivery(accepted=[r for r in recipients if r not in refused_replies], refused=refused_replies)
