"""The drafts of one order on their own (no Temporal server): ids, refusals, reminders, how they read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from printroom.models import DraftContent, DraftRules, Order, SendDraft, StatusEmailRequest
from printroom.workflows.drafts import DraftBook, DraftRefused
from tests.conftest import sample_order

NOW = datetime(2026, 11, 28, 17, 30, tzinfo=timezone.utc)
REQUEST = StatusEmailRequest(order=Order.model_validate(sample_order("PO-9")), email_trigger="order_accepted", status="accepted")


def content(**changes) -> DraftContent:
    base = dict(
        email_trigger="order_accepted", audience="customer", sender="Print Room <print@example.org>",
        to=["marie@example.org"], subject="Your order PO-9 has been accepted", text="Hello Marie,\n\nGood news.\n",
        html="<p>Hello Marie,</p>", message_id="<PO-9.order_accepted.1.customer@example.org>",
        rules=DraftRules(remind_after=timedelta(hours=4), max_reminders=2, max_pending=3),
    )  # fmt: skip
    return DraftContent(**{**base, **changes})


def test_drafts_are_numbered_per_order_and_found_by_id_or_alone():
    book = DraftBook()
    first = book.hold(content(), REQUEST, NOW)
    assert first.draft.id == "d1" and book.find(None) is first and book.find("d1") is first
    book.hold(content(email_trigger="order_shipped"), REQUEST, NOW)
    with pytest.raises(DraftRefused, match=r"^2 drafts wait \(d1, d2\): say which with draft_id$"):
        book.find(None)
    with pytest.raises(DraftRefused, match=r"^no draft 'd3' for this order; drafts waiting: d1, d2$"):
        book.find("d3")


def test_a_settled_draft_is_answered_with_what_became_of_it_and_a_sending_one_is_not_taken_twice():
    book = DraftBook()
    held = book.hold(content(), REQUEST, NOW)
    held.sending = True
    with pytest.raises(DraftRefused, match="draft d1 is being sent by another request"):
        book.find("d1")
    book.settle(held, "sent at 2026-11-28 17:35 UTC by Léa")
    with pytest.raises(DraftRefused, match=r"^draft d1 was sent at 2026-11-28 17:35 UTC by Léa; drafts waiting: none$"):
        book.find("d1")
    with pytest.raises(DraftRefused, match="^no draft is waiting for this order$"):
        book.find(None)


def test_past_max_pending_a_draft_is_refused_naming_the_limit():
    book = DraftBook()
    for _ in range(3):
        book.hold(content(), REQUEST, NOW)
    with pytest.raises(DraftRefused, match=r"3 drafts already wait \(drafts.max_pending = 3\); send or discard some"):
        book.hold(content(), REQUEST, NOW)


def test_edits_are_checked_against_the_rules_the_draft_was_made_under():
    strict = DraftBook().hold(content(), REQUEST, NOW)
    DraftBook.check(strict, SendDraft(subject="New subject", note="Thursday"))
    DraftBook.check(strict, SendDraft(cc=[]))  # the same Cc as the draft's: nothing changes
    for edits, reason in (
        (SendDraft(cc=["boss@example.org"]), "operators may not change Cc"),
        (SendDraft(attachments=["PO-9/proof.pdf"]), "operators may not attach files"),
        (SendDraft(note="Thursday", html="<p>mine</p>"), "a note goes where the template places it"),
        (SendDraft(text="x" * 300_000), "the html and text come to 292 KB, over drafts.max_html_kb = 256"),
        (SendDraft(note="Thursday", text="mine"), "with text of your own, write the note into it"),
    ):
        with pytest.raises(DraftRefused, match=reason):
            DraftBook.check(strict, edits)
    lenient = DraftBook().hold(content(rules=DraftRules(may_edit_cc=True, may_attach=True)), REQUEST, NOW)
    DraftBook.check(lenient, SendDraft(cc=["boss@example.org"], attachments=["PO-9/proof.pdf"]))


def test_reminders_fall_remind_after_the_draft_or_its_last_reminder_up_to_max_reminders_the_earliest_first():
    book = DraftBook()
    early = book.hold(content(), REQUEST, NOW)
    late = book.hold(content(), REQUEST, NOW + timedelta(hours=1))
    assert book.next_reminder() == (NOW + timedelta(hours=4), early)
    # The timer came late (a worker down for a day): the next one is 4 h after it, not at once.
    early.draft.reminders_sent, early.draft.reminded_at = 1, NOW + timedelta(hours=30)
    assert book.next_reminder() == (NOW + timedelta(hours=5), late)
    late.draft.reminders_sent = 2
    assert book.next_reminder() == (NOW + timedelta(hours=34), early)
    early.draft.reminders_sent = 2
    assert book.next_reminder() is None


def test_the_drafts_of_an_order_hold_at_most_1_5_mb_of_bodies_the_rest_is_rendered_when_sent():
    book, body = DraftBook(), "x" * 250_000
    roomy = DraftRules(max_pending=20)
    held = [book.hold(content(html=body, text=body, rules=roomy), REQUEST, NOW) for _ in range(3)]
    assert [h.draft.body_bytes for h in held] == [500_000, 500_000, 500_000]
    fourth = book.hold(content(html=body, text=body, rules=roomy), REQUEST, NOW).draft
    assert fourth.html == "" and fourth.text == ""
    assert fourth.reason == "held without its body: this order's drafts already hold 1.5 MB; it is rendered again when sent"


def test_current_details_show_each_draft_readably_and_order_data_cannot_write_markdown():
    book = DraftBook()
    book.hold(content(subject="[Win a prize](https://evil.example) *now*", text="Hello `Marie`\nline 2\n"), REQUEST, NOW)
    book.hold(content(cc=["archive@example.org"], attachments=["PO-9/J1/final.pdf"], reason="550 mailbox unavailable"), REQUEST, NOW)
    details = "\n".join(book.details())
    assert "**Drafts waiting: 2**" in details
    assert "**d1** · order_accepted to marie@example.org · *\\[Win a prize\\]\\(https://evil.example\\) \\*now\\**" in details
    assert "> Hello \\`Marie\\`  \n> line 2  " in details
    # A file reference or an address cannot start a paragraph of its own, nor a link.
    book.hold(content(attachments=["PO-9/a.pdf\u2028[Pay](https://evil.example)"]), REQUEST, NOW)
    assert "attachments: PO-9/a.pdf \\[Pay\\]\\(https://evil.example\\)" in "\n".join(book.details())
    assert "**d2** · order_accepted to marie@example.org · Cc archive@example.org" in details
    assert "- attachments: PO-9/J1/final.pdf\n- held because: 550 mailbox unavailable" in details
    assert '- send it as it is: `{"draft_id": "d2"}`' in details
