"""What arrives at a real SMTP server (aiosmtpd) when templates attach files and embed a logo: the bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from printroom.activities.email import EmailActivities
from printroom.cli.capture import SmtpCapture
from printroom.models import Order, StatusEmailBatch, StatusEmailRequest
from printroom.settings import Settings
from tests.conftest import sample_order
from tests.test_compose import PNG

PDF = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"  # bytes that no encoding may alter


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "documents"
    (root / "PO-7" / "J1").mkdir(parents=True)
    (root / "PO-7" / "J1" / "final.pdf").write_bytes(PDF)
    (root / "PO-7" / "J1" / "ticket.pdf").write_bytes(b"%PDF-1.4 ticket J1")
    return root


def attaching(settings: Settings, store: Path, *kinds: str, **documents: Any) -> Settings:
    emails = type(settings.emails)(order_completed={"attachments": list(kinds)})
    logo = store.parent / "logo.png"
    logo.write_bytes(PNG)
    templates = settings.templates.model_copy(update={"images": {"logo": logo}})
    return settings.model_copy(
        update={"emails": emails, "templates": templates, "documents": settings.documents.model_copy(update={"root": store, **documents})}
    )


def request(trigger: str = "order_completed", **job: Any) -> StatusEmailRequest:
    jobs = [{"id": "J1", "name": "Flyers", "document": "PO-7/J1/final.pdf", "ticket": "PO-7/J1/ticket.pdf", **job}]
    order = Order.model_validate(sample_order("PO-7", language="de", jobs=jobs))
    return StatusEmailRequest(order=order, email_trigger=trigger, status="completed")


async def send(settings: Settings, req: StatusEmailRequest):
    return await ActivityEnvironment().run(EmailActivities.from_settings(settings).send_status_email, req)


async def test_attachments_and_the_logo_arrive_whole_and_the_html_shows_the_logo(settings, smtp: SmtpCapture, store):
    result = await send(attaching(settings, store, "document", "ticket"), request())
    (message,) = smtp.messages
    assert message.data.isascii()  # base64 and quoted-printable: any relay carries it
    parsed = message.parsed()
    assert parsed.get_content_type() == "multipart/mixed"
    related, *attachments = parsed.iter_parts()
    assert related.get_content_type() == "multipart/related"
    assert [(a.get_filename(), a.get_content_type(), a["Content-Transfer-Encoding"]) for a in attachments] == [
        ("final.pdf", "application/pdf", "base64"),
        ("ticket.pdf", "application/pdf", "base64"),
    ]
    assert attachments[0].get_payload(decode=True) == PDF and len(attachments[0].get_payload(decode=True)) == len(PDF)
    assert attachments[1].get_payload(decode=True) == b"%PDF-1.4 ticket J1"
    logo = next(p for p in related.walk() if p.get_content_maintype() == "image")
    assert logo.get_payload(decode=True) == PNG
    html = parsed.get_body(("html",)).get_content()
    assert f'src="cid:{logo["Content-ID"].strip("<>")}"' in html
    assert parsed["Content-Language"] == "de" and parsed["Subject"] == "Ihr Auftrag PO-7 ist fertig"
    assert parsed["References"] == parsed["In-Reply-To"] == "<PO-7.order_received.1.customer@example.com>"
    assert result.sent[0].attachments == ["final.pdf", "ticket.pdf"]


async def test_a_non_ascii_file_name_arrives_intact(settings, smtp, store):
    (store / "PO-7" / "J1" / "Épreuve finale.pdf").write_bytes(b"%PDF proof")
    await send(attaching(settings, store, "document"), request(document="PO-7/J1/Épreuve finale.pdf"))
    attachment = list(smtp.messages[0].parsed().iter_attachments())[0]
    assert attachment.get_filename() == "Épreuve finale.pdf"


async def test_a_missing_file_is_a_retryable_error_naming_it_and_the_email_goes_once_the_file_is_there(settings, smtp, store):
    settings = attaching(settings, store, "document")
    req = request(document="PO-7/J1/late.pdf")
    with pytest.raises(ApplicationError) as error:
        await send(settings, req)
    assert error.value.type == "AttachmentError" and not error.value.non_retryable
    assert error.value.message == (
        f"the final document of job J1: PO-7/J1/late.pdf is not in the document store {store}; put it there"
    )
    assert smtp.messages == []
    (store / "PO-7" / "J1" / "late.pdf").write_bytes(b"%PDF late")
    await send(settings, req)
    assert [a.get_filename() for a in smtp.messages[0].parsed().iter_attachments()] == ["late.pdf"]


async def test_an_oversized_file_is_a_retryable_error_naming_the_file_and_the_limit(settings, smtp, store):
    with pytest.raises(ApplicationError) as error:
        await send(attaching(settings, store, "document", max_file_mb=0.1), request())
    assert not error.value.non_retryable
    assert "PO-7/J1/final.pdf is 0.3 MB, over the limit documents.max_file_mb = 0.1" in error.value.message
    assert smtp.messages == []


async def test_files_over_the_total_limit_are_refused_naming_it(settings, smtp, store):
    with pytest.raises(ApplicationError, match="come to 0.3 MB, over the limit documents.max_total_mb = 0.2"):
        await send(attaching(settings, store, "document", "ticket", max_total_mb=0.2), request())


async def test_a_link_leading_outside_the_document_store_is_refused_for_good(settings, smtp, store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for customers")
    (store / "PO-7" / "J1" / "escape.pdf").symlink_to(secret)
    batch = StatusEmailBatch(requests=[request(document="PO-7/J1/escape.pdf")])
    result = await ActivityEnvironment().run(
        EmailActivities.from_settings(attaching(settings, store, "document")).send_status_emails, batch
    )
    (held,) = result.results[0].drafts  # held for an operator, with why; the file itself is never read
    assert "PO-7/J1/escape.pdf: leads outside the document store" in held.reason and "refused" in held.reason
    assert "not for customers" not in held.model_dump_json()
    assert result.results[0].retry == [] and smtp.messages == []


def test_an_order_naming_a_file_outside_the_store_is_refused_at_input():
    for bad in ("../etc/passwd", "/etc/passwd", "PO-7/../../x.pdf", "a\\..\\b.pdf"):
        with pytest.raises(ValueError, match="must be a file path relative to the document store"):
            request(document=bad)


async def test_two_jobs_attaching_files_of_the_same_name_are_told_apart(settings, smtp, store):
    (store / "PO-7" / "J2").mkdir()
    (store / "PO-7" / "J2" / "final.pdf").write_bytes(b"%PDF J2")
    req = request()
    jobs = [*req.order.jobs, req.order.jobs[0].model_copy(update={"id": "J2", "document": "PO-7/J2/final.pdf"})]
    req = req.model_copy(update={"order": req.order.model_copy(update={"jobs": jobs})})
    await send(attaching(settings, store, "document"), req)
    names = [a.get_filename() for a in smtp.messages[0].parsed().iter_attachments()]
    assert names == ["J1-final.pdf", "J2-final.pdf"]


async def test_without_attachments_in_the_policy_the_order_files_are_not_read(settings, smtp, store):
    await send(settings, request(document="PO-7/J1/does-not-exist.pdf"))
    assert list(smtp.messages[0].parsed().iter_attachments()) == []


async def test_an_email_the_server_took_is_not_sent_again_even_if_its_file_has_gone_since(settings, smtp, store):
    settings = attaching(settings, store, "document")
    await send(settings, request())
    (store / "PO-7" / "J1" / "final.pdf").unlink()
    again = await send(settings, request())  # a retry after a crash between DATA and the activity's completion
    assert len(smtp.messages) == 1
    assert [e.message_id for e in again.sent] == ["<PO-7.order_completed.1.customer@example.com>"]
    assert again.notes == [
        "order_completed: <PO-7.order_completed.1.customer@example.com> was accepted by the server on an earlier attempt; not sent again"
    ]
