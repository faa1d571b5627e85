"""Reading a message from the print room's mailbox: is it a bounce, for which recipients, of which email? Pure
(bytes in, a verdict out), so every format is tested without a server.

A delivery status notification (RFC 3464) is read first, since it says per recipient whether delivery failed for
good (`Action: failed`) or is still being tried (`delayed`) and why (`Status`, `Diagnostic-Code`). Formats without
one (qmail's QSBMF, older Exchange, ...) are recognised by flufl.bounce, Mailman's detectors. The email that
bounced is named by its Message-ID, found in the returned headers (text/rfc822-headers or message/rfc822), else in
the bounce's In-Reply-To or References, else quoted in its text."""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.header import Header, decode_header
from email.parser import BytesParser, HeaderParser
from typing import Literal

from flufl.bounce import all_failures

from printroom.message_ids import parse_message_id

# What is read of a message: a bounce's report and the returned headers come first; the rest (a returned 20 MB
# attachment) says nothing more.
MAX_BYTES = 256 * 1024

Verdict = Literal["bounce", "auto_reply", "not_a_bounce", "malformed"]
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<[^<>\s@]{1,900}@[^<>\s@]{1,250}>")
_QUOTED_MESSAGE_ID = re.compile(r"^\s*>?\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
# RFC 3834's Auto-Submitted, and what common responders set instead (Exchange, Gmail's vacation, procmail recipes).
_AUTO_REPLY_HEADERS = {"x-autoreply": None, "x-autorespond": None, "x-auto-response-suppress": None}
_AUTO_REPLY_PRECEDENCE = {"auto_reply", "auto-reply", "bulk", "junk", "list"}


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a bounce reports, with the report's own words for it."""

    recipient: str
    status: str  # "5.1.1"; "5.0.0" / "4.0.0" where the format gives no code
    permanent: bool
    diagnostic: str


@dataclass(frozen=True)
class Reading:
    """What a message is, and for a bounce, whose email it returns (None: it names none) and who failed."""

    verdict: Verdict
    message_id: str | None = None
    failed: tuple[FailedRecipient, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        """Whether the bounced email is one printroom wrote (its Message-ID names an order)."""
        return self.message_id is not None and parse_message_id(self.message_id) is not None


def read_message(raw: bytes, limit: int = MAX_BYTES) -> Reading:
    """The verdict on one message, read from at most `limit` bytes of it. Raises only on what no parser could read
    (the caller moves such a message aside as malformed)."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw[:limit])
    # A DSN is the authority on its recipients: Mailman's heuristics read the others (and never a DSN saying
    # "delivered", where they would take the returned message's To for a failure).
    blocks = _recipient_blocks(message)
    failed = _from_delivery_status(blocks) if blocks else _from_detectors(message)
    if failed:
        return Reading("bounce", _bounced_message_id(message), tuple(failed))
    if _is_delivery_report(message):
        if not blocks:  # says it reports a delivery, and reports none: moved aside
            return Reading("malformed", notes=["a delivery report whose delivery-status names no recipient"])
        return Reading("not_a_bounce", notes=["a delivery report without a failed recipient"])  # delivered, relayed
    if _is_auto_reply(message):
        return Reading("auto_reply")
    return Reading("not_a_bounce")


def _is_delivery_report(message: email.message.Message) -> bool:
    return message.get_content_type() == "multipart/report" and message.get_param("report-type", "").lower() == "delivery-status"


def _is_auto_reply(message: email.message.Message) -> bool:
    """RFC 3834 (Auto-Submitted other than "no"), or the headers responders set without it. Checked after bounces:
    Postfix marks its own bounces auto-replied too."""
    if (_header(message, "Auto-Submitted") or "no").lower().split(";")[0].strip() != "no":
        return True
    if any(name in (k.lower() for k in message.keys()) for name in _AUTO_REPLY_HEADERS):
        return True
    return _header(message, "Precedence").lower() in _AUTO_REPLY_PRECEDENCE


def _header(message: email.message.Message, name: str) -> str:
    """A header as text whatever its bytes (a broken charset must not stop the reading)."""
    value = message.get(name)
    if isinstance(value, Header):  # undeclared 8-bit bytes: UTF-8 (RFC 6533) if they are, else Latin-1
        value = _decoded(b"".join(c if isinstance(c, bytes) else c.encode("utf-8", "surrogateescape") for c, _ in decode_header(value)), "utf-8")
    return " ".join(str(value).split()) if value is not None else ""


def _recipient_blocks(message: email.message.Message) -> list[email.message.Message]:
    """RFC 3464's per-recipient blocks (after the per-message one) that say what happened (Action)."""
    found: list[email.message.Message] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):  # not split into blocks (a part in a broken encoding): read it ourselves
            blocks = [HeaderParser(policy=policy.compat32).parsestr(b) for b in re.split(r"\r?\n\s*\r?\n", blocks.strip())]
        found += [b for b in (blocks[1:] if isinstance(blocks, list) else ()) if isinstance(b, email.message.Message) and b.get("Action")]
    return found


def _from_delivery_status(blocks: list[email.message.Message]) -> list[FailedRecipient]:
    """RFC 3464: each per-recipient block whose Action is failed (permanent) or delayed (temporary)."""
    failed: list[FailedRecipient] = []
    for block in blocks:
        action = _header(block, "Action").lower()
        if action in ("failed", "delayed"):
            failed += _failed_recipient(block, action)
    return failed


def _failed_recipient(block: email.message.Message, action: str) -> list[FailedRecipient]:
    address = _address(_header(block, "Final-Recipient") or _header(block, "Original-Recipient"))
    if not address:
        return []
    code = _STATUS.search(_header(block, "Status"))
    permanent = action == "failed" and (code is None or code.group(1) == "5")
    status = code.group(0) if code else ("5.0.0" if permanent else "4.0.0")
    return [FailedRecipient(address, status, permanent, _diagnostic(_header(block, "Diagnostic-Code")))]


def _address(typed: str) -> str:
    """`rfc822; marie@example.org` (or `utf-8; müller@bücher.example`, RFC 6533) as the address alone."""
    return typed.partition(";")[2].strip().strip("<>") if ";" in typed else typed.strip().strip("<>")


def _diagnostic(value: str) -> str:
    """`smtp; 550 5.1.1 <x>: user unknown` as the server's words; bounded (the signal's field holds 2,000)."""
    return (value.partition(";")[2].strip() if ";" in value[:12] else value)[:1000]


def _from_detectors(message: email.message.Message) -> list[FailedRecipient]:
    """Mailman's detectors for the formats without a DSN; the text around each address gives status and reason."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001  # a detector tripping on odd input is not a bounce found
        return []
    text = "\n".join(_texts(message))
    found = [(address, True) for address in sorted(permanent)] + [(address, False) for address in sorted(temporary)]
    return [_described(address.decode("ascii", "replace"), permanent, text) for address, permanent in found]


def _described(address: str, permanent: bool, text: str) -> FailedRecipient:
    """The first status code and the line after the address, as the format said them."""
    after = text[text.lower().find(address.lower()) :] if address.lower() in text.lower() else text
    code = _STATUS.search(after) or _STATUS.search(text)
    lines = [line.strip() for line in after.splitlines() if line.strip()]
    diagnostic = " ".join(lines[:3])[:1000]
    if code and (code.group(1) == "5") == permanent:
        return FailedRecipient(address, code.group(0), permanent, diagnostic)
    return FailedRecipient(address, "5.0.0" if permanent else "4.0.0", permanent, diagnostic)


def _texts(message: email.message.Message) -> Iterator[str]:
    """Every text part of the bounce itself (not of the returned message), decoded in its own charset."""
    for part in message.walk():
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield _decoded(payload, part.get_content_charset() or "us-ascii")


def _decoded(payload: bytes, charset: str) -> str:
    """Text in its declared charset; bytes that are not (or a charset Python does not know) read as Latin-1, which
    keeps every byte and the ASCII around it."""
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return payload.decode("latin-1")


def _bounced_message_id(message: email.message.Message) -> str | None:
    """The returned email's Message-ID; printroom's own preferred where several are named."""
    candidates = list(_message_id_candidates(message))
    return next((c for c in candidates if parse_message_id(c) is not None), candidates[0] if candidates else None)


def _message_id_candidates(message: email.message.Message) -> Iterator[str]:
    for part in message.walk():
        if part.get_content_type() == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                returned = HeaderParser(policy=policy.compat32).parsestr(_decoded(payload, "utf-8"))
                yield from _MESSAGE_ID.findall(_header(returned, "Message-ID"))
        elif part.get_content_type() == "message/rfc822":
            for returned in part.get_payload() or ():
                if isinstance(returned, email.message.Message):
                    yield from _MESSAGE_ID.findall(_header(returned, "Message-ID"))
    for name in ("In-Reply-To", "References"):
        yield from _MESSAGE_ID.findall(_header(message, name))
    for text in _texts(message):
        yield from _QUOTED_MESSAGE_ID.findall(text)
