"""Interop: printroom's emails through Debian's Postfix over STARTTLS, as they land in a real mailbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import trustme
from temporalio.testing import ActivityEnvironment

from printroom.activities.email import EmailActivities
from printroom.models import Order, StatusEmailRequest
from printroom.settings import Settings
from tests.conftest import eventually, sample_order
from tests.postfix_server import PostfixServer, ensure_postfix_installed


@pytest.fixture(scope="module")
def postfix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostfixServer, Path]]:
    if (why := ensure_postfix_installed()) is not None:
        if os.environ.get("CI"):
            pytest.fail(why)  # CI runs as root with apt: there, not having Postfix is a failure
        pytest.skip(why)
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = PostfixServer(ca).start()
    yield server, ca_file
    server.stop()


def activities(server: PostfixServer, ca_file: Path, tmp_path: Path) -> EmailActivities:
    settings = Settings(
        sender={"address": "printroom@example.com", "name": "Druckerei Müller"},
        operators=["ops@example.org"],
        smtp={"host": "127.0.0.1", "port": server.port, "security": "starttls", "ca_file": ca_file, "timeout_seconds": 20},
        deliveries_dir=tmp_path / "deliveries",
    )
    return EmailActivities.from_settings(settings)


def request(trigger: str, **changes) -> StatusEmailRequest:
    order = Order.model_validate(sample_order("PO-42", **changes))
    return StatusEmailRequest(order=order, email_trigger=trigger, status="cancelled", comment="Annulée à votre demande")


async def test_an_email_through_postfix_arrives_intact_in_the_mailbox_over_tls(postfix, tmp_path):
    server, ca_file = postfix
    result = await ActivityEnvironment().run(activities(server, ca_file, tmp_path).send_status_email, request("order_cancelled"))
    assert {e.audience for e in result.sent} == {"customer", "operators"}
    stored = await eventually(lambda: server.mailbox("marie@example.org"), what=f"delivery by Postfix:\n{server.log()}")
    message = message_from_bytes(stored[0], policy=policy.default)
    assert "with ESMTPS" in message["Received"] and "using TLS" in message["Received"]
    assert message["Delivered-To"] == "marie@example.org"
    assert message["Return-Path"] == "<printroom@example.com>"
    assert message["Message-ID"] == "<PO-42.order_cancelled.1.customer@example.com>"
    assert message["Subject"] == "La commande PO-42 a été annulée"
    assert str(message["From"]) == "Druckerei Müller <printroom@example.com>"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "Annulée à votre demande" in message.get_body(("plain",)).get_content()
    assert "Annulée à votre demande" in message.get_body(("html",)).get_content()
    assert await eventually(lambda: server.mailbox("ops@example.org"), what="the operators' copy")


async def test_postfix_refusing_an_unknown_mailbox_holds_that_audiences_email_with_the_reason(postfix, tmp_path):
    server, ca_file = postfix
    result = await ActivityEnvironment().run(
        activities(server, ca_file, tmp_path).send_status_email,
        request("order_cancelled", customer={"email": "nobody-here@example.org"}),
    )
    assert [d.audience for d in result.drafts] == ["customer"] and result.failed == []
    assert "550 5.1.1" in result.drafts[0].reason and "nobody-here@example.org" in result.drafts[0].reason
    assert [e.audience for e in result.sent] == ["operators"]


async def test_international_addresses_through_postfix_arrive_with_ascii_domains_and_utf8_local_parts(postfix, tmp_path):
    """Postfix offers SMTPUTF8: müller@bücher.example goes out as müller@xn--bcher-kva.example and lands in its
    mailbox, headers in UTF-8; info@bücher.example needs no SMTPUTF8 at all."""
    server, ca_file = postfix
    emails = activities(server, ca_file, tmp_path)
    for customer in ("müller@bücher.example", "info@bücher.example"):
        result = await ActivityEnvironment().run(
            emails.send_status_email, request("order_shipped", customer={"name": "Jürgen Müller", "email": customer})
        )
        assert [e.to for e in result.sent] == [[customer]] and result.drafts == []
    utf8 = await eventually(lambda: server.mailbox("müller@xn--bcher-kva.example"), what=f"the UTF-8 mailbox:\n{server.log()}")
    message = message_from_bytes(utf8[0], policy=policy.default)
    assert message["To"] == "müller@xn--bcher-kva.example" and b"\nTo: m\xc3\xbcller@xn--bcher-kva.example\n" in utf8[0]  # Maildir keeps LF
    assert "with UTF8SMTPS" in message["Received"]  # SMTPUTF8, over TLS
    plain = await eventually(lambda: server.mailbox("info@xn--bcher-kva.example"), what="the IDN mailbox")
    assert message_from_bytes(plain[0], policy=policy.default)["Delivered-To"] == "info@xn--bcher-kva.example"
