"""Bounces as the servers of the print room's customers send them, written for these tests from the formats'
specifications (RFC 3464 DSNs, RFC 3462 multipart/report, RFC 3834 auto-replies, qmail's QSBMF) and the structure
flufl.bounce's detectors document; every address, id and sentence is ours."""

from __future__ import annotations

OURS = "<PO-42.order_shipped.1.customer.r0123456789@example.com>"
BOUNDARY = "=_report_boundary"


def _dsn(
    recipients: list[tuple[str, str, str, str]],
    *,
    headers: str = "",
    intro: str = "Your message could not be delivered to one or more recipients.\n",
    intro_charset: str = "us-ascii",
    message_id: str = OURS,
    returned: str = "text/rfc822-headers",
    reporter: str = "dns; mx.example.net",
) -> bytes:
    """A multipart/report (RFC 3462) whose delivery-status (RFC 3464) has one block per (recipient, action, status,
    diagnostic), followed by the returned headers or message."""
    blocks = "".join(
        f"\nFinal-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n"
        + (f"Diagnostic-Code: smtp; {diagnostic}\n" if diagnostic else "")
        for address, action, status, diagnostic in recipients
    )
    returned_headers = f"From: Print Room <printroom@example.com>\nTo: someone@example.org\nMessage-ID: {message_id}\nSubject: Your order PO-42 has shipped\n"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: printroom@example.com\n"
        f"Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n{headers}"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{BOUNDARY}"\n\n'
        f"--{BOUNDARY}\nContent-Type: text/plain; charset={intro_charset}\nContent-Transfer-Encoding: 8bit\n\n"
    ).encode() + intro.encode(intro_charset) + (
        f"\n--{BOUNDARY}\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: {reporter}\nArrival-Date: Thu, 3 Dec 2026 11:00:00 +0000\n{blocks}\n"
        f"--{BOUNDARY}\nContent-Type: {returned}\n\n{returned_headers}"
        + ("\nThe order has shipped.\n" if returned == "message/rfc822" else "")
        + f"\n--{BOUNDARY}--\n"
    ).encode()


def postfix_user_unknown() -> bytes:
    """Postfix's bounce: a DSN whose diagnostic quotes the remote server, the original returned as headers."""
    return _dsn([("nobody@example.org", "failed", "5.1.1", "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown")])


def gmail_address_not_found() -> bytes:
    """A large provider's DSN: a human explanation first, the full original returned as message/rfc822."""
    return _dsn(
        [("typo@gmail.example", "failed", "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist.")],
        intro="Address not found\n\nYour message was not delivered to typo@gmail.example: the address was not found.\n",
        returned="message/rfc822",
        reporter="dns; googlemail.example",
    )


def exchange_ndr() -> bytes:
    """A Microsoft Exchange non-delivery report: DSN with an enhanced status and the mailbox server's words."""
    return _dsn(
        [("m.curie@contoso.example", "failed", "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")],
        intro="Delivery has failed to these recipients or groups:\n\nm.curie@contoso.example\n",
        headers="X-MS-Exchange-Message-Is-Ndr: \n",
        reporter="dns; mail.contoso.example",
    )


def exchange_legacy() -> bytes:
    """The older Exchange format, no DSN: the recipients between a fixed opening and the MSEXCH line; the original
    Message-ID in In-Reply-To."""
    return (
        "From: System Administrator <postmaster@legacy.example>\nTo: printroom@example.com\n"
        f"Subject: Undeliverable: Your order PO-42 has shipped\nIn-Reply-To: {OURS}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "Your message\n\n  Subject: Your order PO-42 has shipped\n\n"
        "did not reach the following recipient(s):\n\n"
        "buyer@legacy.example on Thu, 3 Dec 2026 11:00:00 +0000\n"
        "    The recipient name is not recognized\n"
        "    MSEXCH:IMS:Legacy:Site:MAIL01 0 (000C05A6) Unknown Recipient\n"
    ).encode()


def qmail_qsbmf() -> bytes:
    """qmail-send's QSBMF: an intro paragraph, one paragraph per recipient starting `<address>:`, a break line, then
    the original message quoted in the text (its Message-ID read there)."""
    return (
        "From: MAILER-DAEMON@qmail.example\nTo: printroom@example.com\nSubject: failure notice\n\n"
        "Hi. This is the qmail-send program at qmail.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<gone@qmail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"Return-Path: <printroom@example.com>\nMessage-ID: {OURS}\nSubject: Your order PO-42 has shipped\n\nThe order has shipped.\n"
    ).encode()


def several_recipients_one_failed() -> bytes:
    """One email to three addresses: delivered, relayed, and one failed; only the failed one is a bounce."""
    return _dsn([
        ("ops@example.org", "delivered", "2.0.0", "250 2.0.0 OK"),
        ("marie@example.org", "failed", "5.2.2", "552 5.2.2 Mailbox full"),
        ("archive@example.org", "relayed", "2.0.0", ""),
    ])  # fmt: skip


def delayed() -> bytes:
    """A warning, not a failure: still being tried (Action: delayed, a 4.x.x status)."""
    return _dsn([("slow@example.org", "delayed", "4.4.1", "451 4.4.1 Connection timed out")])


def latin1_bounce() -> bytes:
    """A German server's report whose explanation is in ISO-8859-1 and whose diagnostic has an 8-bit byte."""
    return _dsn(
        [("müller@xn--bcher-kva.example", "failed", "5.1.1", "550 5.1.1 Empfänger unbekannt")],
        intro="Ihre Nachricht konnte nicht zugestellt werden: Empfänger unbekannt.\n",
        intro_charset="iso-8859-1",
    ).replace("Empfänger unbekannt\n".encode(), "Empfänger unbekannt\n".encode("iso-8859-1"))


def foreign_bounce() -> bytes:
    """A bounce of an email printroom never sent (someone else's Message-ID)."""
    return _dsn([("someone@example.org", "failed", "5.1.1", "550 5.1.1 User unknown")], message_id="<abc123@elsewhere.example>")


def out_of_office() -> bytes:
    """An automatic reply (RFC 3834): a person's absence, not a delivery failure."""
    return (
        f"From: Marie Curie <marie@example.org>\nTo: printroom@example.com\nSubject: Out of office: Your order PO-42\n"
        f"Auto-Submitted: auto-replied\nIn-Reply-To: {OURS}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
        "I am away until Monday and will read your message when I am back.\n"
    ).encode()


def customer_reply() -> bytes:
    """A person writing back: not a bounce, not automatic."""
    return (
        f"From: Marie Curie <marie@example.org>\nTo: printroom@example.com\nSubject: Re: Your order PO-42\n"
        f"In-Reply-To: {OURS}\n\nThank you, can you deliver on Thursday? The address mailbox is full sometimes.\n"
    ).encode()


def huge_bounce(size: int = 20 * 1024 * 1024) -> bytes:
    """A DSN returning a 20 MB original (a PDF attachment): the report comes first, the rest is padding."""
    head = postfix_user_unknown().replace(f"--{BOUNDARY}--\n".encode(), b"")
    filler = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n" * (size // 37 + 1)
    return head + f"--{BOUNDARY}\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n".encode() + filler + f"--{BOUNDARY}--\n".encode()


def broken_report() -> bytes:
    """Says it is a delivery report (multipart/report, delivery-status) and names no recipient: bytes cut off."""
    return (
        f'From: MAILER-DAEMON@mx.example.net\nTo: printroom@example.com\nSubject: Delivery report\nMIME-Version: 1.0\n'
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{BOUNDARY}"\n\n'
        f"--{BOUNDARY}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n\xff\xfe\x00"
    ).encode("latin-1")
