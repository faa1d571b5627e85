"""Pure composition: a rendered email, its inline images and attachments become the bytes of one MIME message."""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from email import encoders
from email.policy import Compat32
from email.header import Header
from email.headerregistry import Address
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr

from printroom.activities.addresses import ascii_domain, mail_address
from printroom.approvers import address_key
from printroom.message_ids import run_tag
from printroom.activities.rendering import RenderedEmail
from printroom.models import Audience, StatusEmailRequest


@dataclass(frozen=True)
class FilePart:
    """An inline image (shown by the HTML through cid:`name`) or an attachment; bytes read by the caller."""

    name: str
    filename: str
    content_type: str
    data: bytes


_UNSAFE_IN_MESSAGE_ID = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_IN_SHOP = re.compile(r"[^A-Za-z0-9_-]")  # its dots too: the shop is the last part


def _escaped(match: re.Match[str]) -> str:
    """One character as its UTF-8 bytes, `=XX` each: read back by `parse_message_id`."""
    return "".join(f"={byte:02X}" for byte in match.group().encode("utf-8"))


def _message_id(
    shop: str,
    order_id: str,
    email_trigger: str,
    occurrence: int,
    audience: Audience,
    domain: str,
    recipient: str | None,
    run: str = "",
) -> str:
    # Another shop's order of the same number, under the same sender domain, is another email: the shop is part
    # of it, after the audience (a fixed word), its dots escaped; left out for the default shop.
    escape = lambda text, unsafe=_UNSAFE_IN_MESSAGE_ID: unsafe.sub(_escaped, text)  # noqa: E731
    local = ".".join(escape(p) for p in (order_id, email_trigger, str(occurrence), audience))
    if recipient is not None:  # one message per approver (their own answer links): named without their address
        local += "-" + hashlib.sha256(address_key(recipient).encode("utf-8")).hexdigest()[:12]
    if run:  # an order started again under the same id is a new order for its emails: never "already sent"
        local += ".r" + run_tag(run)
    if shop != "default":
        local += "." + escape(shop, _UNSAFE_IN_SHOP)
    return f"<{local}@{ascii_domain(domain)}>"


def message_id(request: StatusEmailRequest, audience: Audience, domain: str, recipient: str | None = None) -> str:
    """Deterministic per shop, order, run, trigger occurrence, audience (and recipient, for an audience written to
    one by one), so a retried send of this run can be recognised and another run's email never is."""
    order = request.order
    return _message_id(order.shop, order.id, request.email_trigger, request.occurrence, audience, domain, recipient, request.run)


# The first email each audience gets about an order; every later one replies to it, so they form one thread.
THREAD_STARTERS: dict[Audience, str] = {
    "customer": "order_received",
    "operators": "order_received_operator",
    "approvers": "approval_requested",
}


def thread_references(
    request: StatusEmailRequest, audience: Audience, domain: str, recipient: str | None = None
) -> list[str]:
    """References of one order's thread: its first email's Message-ID as a run-less root (deterministic, so nothing
    to look up), shared by every run of the order: an order started again stays in the same thread. Mail clients
    thread on it even though no email carries it as its own Message-ID."""
    first = _message_id(request.order.shop, request.order.id, THREAD_STARTERS[audience], 1, audience, domain, recipient)
    return [] if first == message_id(request, audience, domain, recipient) else [first]


_CID = re.compile(r"""(["'(]\s*)cid:([A-Za-z][A-Za-z0-9_-]*)(?=\s*["')])""")


def referenced_images(html: str) -> list[str]:
    """The image names an HTML body shows with src="cid:NAME", in order of first use."""
    return list(dict.fromkeys(m.group(2) for m in _CID.finditer(html)))


def _content_id(name: str, domain: str) -> str:
    return f"{name}@{domain}"


class _WirePolicy(Compat32):
    """compat32 with CRLF line ends. A short ASCII header is written as it is: folding it through email.header
    gives the same bytes, at a tenth of a millisecond per message. An address header is folded between its
    addresses; one holding an address whose local part is not ASCII is written in UTF-8 (RFC 6532), never as one
    encoded-word, which no mail client reads as addresses (it goes only with SMTPUTF8)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, str) and value.isascii() and len(name) + len(value) <= 76 and not _LINE_BREAK.search(value):
            return f"{name}: {value}\r\n".encode("ascii")
        if isinstance(value, str) and name.lower() in _ADDRESS_HEADERS and not value.isascii() and not _LINE_BREAK.search(value):
            return _fold_addresses(name, value)
        return super().fold_binary(name, value)


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to"})


def _named(display_name: str, address: str) -> str | Header:
    """`Name <address>`; a non-ASCII name as encoded-words short enough to fold (RFC 2047: 75 characters each)."""
    if display_name.isascii():
        return formataddr((display_name, address))
    named = Header(display_name, "utf-8", header_name="From")
    named.append(f"<{address}>", "us-ascii")
    return named


def _fold_addresses(name: str, value: str) -> bytes:
    """`To: a, b, c` in UTF-8, folded between addresses (RFC 5322 2.2.3, RFC 6532 3.2)."""
    first, *rest = value.split(", ")
    lines = [f"{name}: {first}"]
    for address in rest:
        if len(lines[-1]) + 2 + len(address) > 78:
            lines[-1] += ","
            lines.append(f" {address}")
        else:
            lines[-1] += f", {address}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


_LINE_BREAK = re.compile(r"[\r\n]")
_WIRE = _WirePolicy(linesep="\r\n")


def _boundary() -> str:
    """`=_` never occurs in quoted-printable or base64, which every part is written in: the boundary cannot clash
    with content, and the generator is spared compiling a regex per message to search for a clash."""
    return f"=_printroom_{secrets.token_hex(12)}"


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """UTF-8, quoted-printable: readable in the raw message, 7-bit safe for any relay. binascii encodes in C
    what email.charset does in Python, with the same result (RFC 2045 soft breaks at 76)."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii"))
    return part


def build_message(
    rendered: RenderedEmail,
    *,
    sender: Address,
    to: list[str],
    message_id: str,
    date: datetime,
    cc: list[str] | None = None,
    reply_to: str | None = None,
    references: Sequence[str] = (),
    images: Sequence[FilePart] = (),
    attachments: Sequence[FilePart] = (),
) -> bytes:
    """The bytes that go on the wire (CRLF line ends): text and HTML as multipart/alternative, inside
    multipart/related with the images the HTML shows, inside multipart/mixed with the attachments.

    The compat32 classes build it three times faster than EmailMessage (0.9 ms against 2.8 ms here),
    with the same result for a mail client: RFC 2047 encoded headers, quoted-printable UTF-8 parts.
    """
    domain = message_id.rpartition("@")[2].rstrip(">")
    html = rendered.html
    if images:
        # cid:logo in the template; a Content-ID is an addr-spec, so the part and the HTML say cid:logo@domain.
        names = {image.name for image in images}
        html = _CID.sub(lambda m: f"{m.group(1)}cid:{_content_id(m.group(2), domain) if m.group(2) in names else m.group(2)}", html)
    alternative = MIMEMultipart("alternative", boundary=_boundary())
    alternative.attach(_text_part(rendered.text, "plain"))
    alternative.attach(_text_part(html, "html"))
    body: MIMEBase = alternative
    if images:
        body = MIMEMultipart("related", boundary=_boundary(), type="multipart/alternative")
        body.attach(alternative)
        for image in images:
            part = MIMEImage(image.data, image.content_type.partition("/")[2])
            part["Content-ID"] = f"<{_content_id(image.name, domain)}>"
            part.add_header("Content-Disposition", "inline", filename=image.filename)
            body.attach(part)
    message = body
    if attachments:
        message = MIMEMultipart("mixed", boundary=_boundary())
        message.attach(body)
        for attachment in attachments:
            part = MIMEBase(*attachment.content_type.split("/", 1))
            part.set_payload(attachment.data)
            encoders.encode_base64(part)
            # A non-ASCII name is written as RFC 2231 says (filename*=utf-8''...) by add_header itself.
            part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
            message.attach(part)
    message["From"] = _named(sender.display_name, mail_address(sender.addr_spec).wire)
    message["To"] = ", ".join(mail_address(a).wire for a in to)
    if cc:
        message["Cc"] = ", ".join(mail_address(a).wire for a in cc)
    if reply_to:
        message["Reply-To"] = mail_address(reply_to).wire
    subject = " ".join(rendered.subject.split())  # no CR or LF can reach the header
    message["Subject"] = Header(subject, "us-ascii" if subject.isascii() else "utf-8", header_name="Subject")
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if references:
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
    message["Content-Language"] = rendered.language
    message["Auto-Submitted"] = "auto-generated"
    return message.as_bytes(policy=_WIRE)
