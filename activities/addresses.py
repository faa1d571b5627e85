"""Email addresses as SMTP and headers need them (RFC 5321, 5322, 6531, 6532): an international domain in its
ASCII (IDNA) form everywhere; a local part that is not ASCII needs the server's SMTPUTF8 and UTF-8 headers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """An address no mail server can take as written; the message names it."""


@dataclass(frozen=True)
class MailAddress:
    given: str  # as the order or the settings wrote it, e.g. müller@bücher.example
    wire: str  # for MAIL FROM, RCPT TO and headers: the domain in ASCII, e.g. müller@xn--bcher-kva.example
    utf8: bool  # the local part is not ASCII: only a server offering SMTPUTF8 can take it

    @property
    def domain(self) -> str:
        return self.wire.rpartition("@")[2]


@lru_cache(maxsize=4096)
def mail_address(address: str) -> MailAddress:
    """`user@bücher.example` -> `user@xn--bcher-kva.example`; `user@xn--bcher-kva.example` stays as it is."""
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise AddressError(f"{address!r} is not an email address: {error}") from None
    local = checked.local_part
    return MailAddress(given=address, wire=f"{local}@{checked.ascii_domain}", utf8=not local.isascii())


def ascii_domain(domain: str) -> str:
    """A domain as it goes into Message-IDs and Content-IDs, which are ASCII only."""
    return mail_address(f"postmaster@{domain}").domain
