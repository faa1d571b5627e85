"""The operators' desk and the draft editor over HTTP (uvicorn on a real port, the dev server, a real SMTP
capture): the list, a preview that writes nothing, a send with a note and an edited sentence, a second send, a
discard, and every bad link, field and state refused with the reason and nothing sent."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html import unescape

from temporalio.client import Client

from printroom.links import ApprovalLink
from printroom.models import Draft, OrderState
from printroom.worker.main import build_worker
from tests.conftest import event_names, eventually, messages_to, order_state
from tests.desk_helpers import SIGNER, _drafts, desk_settings, desk_url, editor_url, listed, order_with_draft
from tests.test_approval_page import security_headers_are_set, stoppable_temporal  # noqa: F401  # a server to stop
from tests.test_bounces import CUSTOMER, bounce, started
from tests.web_helpers import fetch, web_running

MARIE = "marie@example.org"


async def test_the_desk_lists_a_held_draft_and_the_editor_previews_then_sends_it_once(client: Client, settings, smtp, task_queue):
    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en")
        desk = await fetch(desk_url(base))
        assert desk.status == 200 and order["id"] in desk.text and draft.subject in desk.text
        assert "Marie Curie" in desk.text and "order_accepted (en)" in desk.text and "operator review" in desk.text
        assert "Page 1 of 1 · 1 email" in desk.text and "1 emails" not in desk.text
        security_headers_are_set(desk)

        editor = editor_url(base, order["id"], draft)
        page = await fetch(editor)
        assert page.status == 200 and f"Draft {draft.id} of order {order['id']}" in page.text
        assert draft.preview_url is not None  # current details' read-only page leads to the editor
        read_only = await fetch(draft.preview_url)
        assert f'href="/en/drafts/{draft.preview_url.rsplit("/", 1)[1]}"' in read_only.body and "Edit it, preview it and send it" in read_only.text
        assert 'name="cc"' not in page.body and 'name="to"' not in page.body  # not allowed by the settings
        assert "<script" not in page.body and page.headers["Content-Security-Policy"] == desk.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"

        text = draft.text.replace("Good news", "Great news")
        form = {"draft": draft.id, "subject": draft.subject, "note": "Delivery on <b>Thursday</b>", "text": text, "by": "Léa"}
        before = await event_names(handle)
        preview = await fetch(editor, {**form, "action": "preview"})
        assert preview.status == 200, preview.text
        assert await event_names(handle) == before  # a preview writes nothing to the order's history
        assert "Preview: the email exactly as it will be sent" in preview.text
        assert "Great news" in preview.text and "Delivery on <b>Thursday</b>" in preview.text  # shown as text
        assert "<b>Thursday" not in preview.body  # escaped, even inside the frame's srcdoc
        assert (await order_state(handle)).drafts_pending and not the_draft(smtp, draft)  # a preview sends nothing

        sent = await fetch(editor, {**form, "action": "send"})
        assert sent.status == 200, sent.text
        assert f"Draft {draft.id} of order {order['id']} is sent" in sent.text and draft.message_id in sent.text
        email = (await eventually(lambda: the_draft(smtp, draft), what="the edited email"))[0].parsed()
        body = email.get_body(("plain",)).get_content()
        assert "Great news" in body and "Delivery on <b>Thursday</b>" in body
        html = email.get_body(("html",)).get_content()
        assert "Great news" in html and "Delivery on &lt;b&gt;Thursday&lt;/b&gt;" in html  # the note, escaped, in both parts
        shown = re.search(r'<pre class="text-part">(.*?)</pre>', preview.body, re.S)
        assert shown is not None and unescape(shown.group(1)).replace("\r\n", "\n") == body.replace("\r\n", "\n")  # previewed as sent (line ends aside)
        assert email["Message-ID"].strip() == draft.message_id
        kept = [c for c in sent.headers.get_all("Set-Cookie") if c.startswith("printroom_by=")]
        assert len(kept) == 3 and all("Path=/en/drafts/" in c or "Path=/fr/drafts/" in c or "Path=/de/drafts/" in c for c in kept)
        assert all("L%C3%A9a" in c and "HttpOnly" in c and "SameSite=lax" in c and "Max-Age=31536000" in c for c in kept), kept
        assert all("Secure" not in c for c in kept)  # web.public_url is http here: a Secure cookie would never come back
        later_handle, later, next_draft = await order_with_draft(client, task_queue, language="en")
        filled = await fetch(editor_url(base, later["id"], next_draft), cookie=kept[0].split(";")[0])
        assert 'id="by" name="by" value="Léa"' in filled.body  # the name is remembered for the next draft
        assert 'name="by" value=""' in (await fetch(editor_url(base, later["id"], next_draft))).body  # not without it
        await later_handle.terminate("test done")

        again = await fetch(editor, {**form, "action": "send"})
        assert again.status == 409 and f"{draft.id} was sent at" in again.text and "by Léa" in again.text
        state: OrderState = await order_state(handle)
        assert not state.drafts_pending and len(the_draft(smtp, draft)) == 1
        assert order["id"] not in (await fetch(desk_url(base))).text
        await handle.signal("change_status", {"trigger": "cancel"})


def the_draft(smtp, draft: Draft) -> list:
    """The messages that arrived under the draft's Message-ID."""
    return [m for m in messages_to(smtp, MARIE) if m.parsed()["Message-ID"].strip() == draft.message_id]


async def test_a_mistyped_address_is_corrected_only_where_the_settings_allow_it(client: Client, settings, smtp, task_queue):
    web = desk_settings(settings, task_queue, operator_may_edit_to=True, operator_may_edit_cc=True)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en", customer={"name": "Marie Curie", "email": "marie@exmaple.org", "wants_status_emails": True})
        editor = editor_url(base, order["id"], draft)
        page = await fetch(editor)
        assert 'name="to"' in page.body and 'name="cc"' in page.body
        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "by": "Léa", "action": "send"}
        bad = await fetch(editor, {**form, "to": "marie@", "cc": ""})
        assert bad.status == 400 and "'marie@' is not an email address" in bad.text
        sent = await fetch(editor, {**form, "to": MARIE, "cc": "boss@example.org"})
        assert sent.status == 200 and f"to {MARIE}" in sent.text and "Cc: boss@example.org" in sent.text, sent.text
        email = (await eventually(lambda: the_draft(smtp, draft), what="the corrected email"))[0].parsed()
        assert email["To"].addresses[0].addr_spec == MARIE and email["Cc"].addresses[0].addr_spec == "boss@example.org"
        await handle.signal("change_status", {"trigger": "cancel"})


async def test_bad_links_fields_and_states_are_refused_with_the_reason_and_nothing_is_sent(client: Client, settings, smtp, task_queue, caplog):
    web = desk_settings(settings, task_queue, max_html_kb=16)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en")
        editor = editor_url(base, order["id"], draft)
        desk_token = desk_url(base).rsplit("/", 1)[1]
        draft_token = editor.rsplit("/", 1)[1]
        now = datetime.now(timezone.utc)
        approval_token = SIGNER.approval(ApprovalLink(order["id"], "head@example.org", "approve", now + timedelta(days=1), now))
        refused = {
            "expired desk link": (await fetch(desk_url(base, valid_for=timedelta(seconds=-1))), "The link has expired"),
            "tampered desk link": (await fetch(f"{base}/en/desk/{desk_token[:-4]}AAAA"), "The link was changed"),
            "a draft's link as the desk's": (await fetch(f"{base}/en/desk/{draft_token}"), "The link was changed"),
            "the desk's link as a draft's": (await fetch(f"{base}/en/drafts/{desk_token}"), "The link was changed"),
            "the desk's link posted to": (await fetch(f"{base}/en/drafts/{desk_token}", {"action": "send"}), "The link was changed"),
            "expired editor link": (await fetch(editor_url(base, order["id"], draft, valid_for=-timedelta(seconds=1))), "The link has expired"),
            "tampered editor link": (await fetch(f"{base}/en/drafts/{draft_token[:-4]}AAAA"), "The link was changed"),
            "tampered editor link posted to": (await fetch(f"{base}/en/drafts/{draft_token[:-4]}AAAA", {"action": "send"}), "The link was changed"),
            "an approval's link as the desk's": (await fetch(f"{base}/en/desk/{approval_token}"), "The link was changed"),
            "an approval's link as a draft's": (await fetch(f"{base}/en/drafts/{approval_token}"), "The link was changed"),
        }
        for what, (answer, words) in refused.items():
            assert answer.status == 403 and words in answer.text, (what, answer.status, answer.text)
        assert desk_token not in caplog.text and draft_token not in caplog.text and approval_token not in caplog.text  # logged, tokens never

        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "by": "Léa"}
        too_long = {
            "note": (await fetch(editor, {**form, "note": "n" * 2001, "action": "send"}), 400, "Note to the customer has 2001 characters; at most 2000"),
            "subject": (await fetch(editor, {**form, "subject": "s" * 201, "action": "send"}), 400, "Subject has 201 characters; at most 200"),
            "text": (await fetch(editor, {**form, "text": "t" * 16385, "action": "preview"}), 400, "has 16385 characters; at most 16384"),
            "reason": (await fetch(editor, {**form, "reason": "r" * 2001, "action": "discard"}), 400, "has 2001 characters; at most 2000"),
            "no reason": (await fetch(editor, {**form, "action": "discard"}), 400, "Say why the draft is discarded"),
            "no action": (await fetch(editor, {**form, "action": "publish"}), 400, "The form could not be read"),
            "a file while not allowed": (await fetch(editor, {**form, "attach:x": "jobs/J1/proof.pdf", "action": "send"}), 409, "operators may not attach files to d1"),
            "a file outside the store": (await fetch(editor, {**form, "attach:x": "../../etc/passwd", "action": "preview"}), 400, "attachments.0"),
            "a Cc while not allowed": (await fetch(editor, {**form, "cc": "boss@example.org", "action": "send"}), 409, "operators may not change the Cc of d1"),
            "a To while not allowed": (await fetch(editor, {**form, "to": "other@example.org", "action": "send"}), 409, "operators may not change the recipients of d1"),
        }
        for what, (answer, status, words) in too_long.items():
            assert answer.status == status and words in answer.text, (what, answer.status, answer.text)
        assert too_long["note"][0].status == 400 and "n" * 2001 in too_long["note"][0].body  # the form comes back, kept

        script = "<script>alert(1)</script> Your order"
        shown = await fetch(editor, {**form, "subject": script, "action": "preview"})
        assert shown.status == 200 and "<script>" not in shown.body and "&lt;script&gt;alert(1)&lt;/script&gt; Your order" in shown.body
        assert not the_draft(smtp, draft) and (await order_state(handle)).drafts_pending  # nothing above sent anything

        # The order closes meanwhile (terminated from the Web UI): said so, nothing sent.
        await handle.terminate("test: the order is closed from outside")
        closed = await fetch(editor, {**form, "action": "send"})
        assert closed.status == 404 and f"Order {order['id']} has closed: its drafts no longer wait" in closed.text
        assert not the_draft(smtp, draft)


async def test_the_desk_says_when_temporal_is_out_of_reach_and_keeps_nothing(settings, task_queue):
    from printroom.settings import TemporalSettings
    from tests.conftest import free_port

    down = desk_settings(settings, task_queue).model_copy(update={"temporal": TemporalSettings(address=f"127.0.0.1:{free_port()}", namespace="default")})
    async with web_running(down, None) as base:
        for lang, words in (("en", "Nothing was recorded and nothing is lost"), ("de", "Nichts wurde erfasst")):
            answer = await fetch(desk_url(base, lang))
            assert answer.status == 503 and words in answer.text and "Emails waiting" not in answer.text


async def test_printroom_drafts_desk_link_prints_a_link_that_opens_the_desk_and_says_what_it_needs(client: Client, settings, task_queue, tmp_path):
    from tests.conftest import run_printroom
    from tests.web_helpers import SECRET

    web = desk_settings(settings, task_queue)
    toml = tmp_path / "printroom.toml"
    toml.write_text(f'[web]\npublic_url = "{web.web.public_url}"\n[desk]\nlink_ttl = "2d"\n')
    printed = run_printroom("--settings", str(toml), "drafts", "desk-link", "--lang", "fr", PRINTROOM_WEB__SECRET=SECRET)
    assert printed.returncode == 0 and "valid 2 days" in printed.stdout, printed
    link = printed.stdout.strip().splitlines()[-1]
    assert link.startswith(f"{web.web.public_url}/fr/desk/") and SECRET not in printed.stdout
    async with web_running(web, client):
        desk = await fetch(link)
        assert desk.status == 200 and "E-mails en attente" in desk.text

    unsigned = run_printroom("--settings", str(toml), "drafts", "desk-link")
    assert unsigned.returncode != 0 and "set PRINTROOM_WEB__SECRET or web.secret_file" in unsigned.stderr
    toml.write_text("")
    nowhere = run_printroom("--settings", str(toml), "drafts", "desk-link", PRINTROOM_WEB__SECRET=SECRET)
    assert nowhere.returncode != 0 and "needs web.public_url" in nowhere.stderr, nowhere


async def test_many_orders_waiting_are_paged_50_a_page_oldest_first_each_draft_once_and_quickly(client: Client, settings, smtp, task_queue):
    """120 orders here (bench/desk.py measures 1,000): every draft on exactly one page, oldest draft first (the
    orders' drafts are held in the reverse of the order they started, and of their ids), 50 a page at most, each page within 3 s on this shared machine (bench/RESULTS.md: about 0.2 s)."""
    import asyncio
    import re
    import time

    from tests.conftest import sample_order
    from printroom.workflows.order import OrderWorkflow

    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        ids = [f"PAGED-{task_queue[-8:]}-{n:03d}" for n in range(120)]

        async def start(n: int) -> None:
            order = sample_order(ids[n], language="en")
            await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)

        async def accept(n: int) -> None:
            handle = client.get_workflow_handle(f"order-{ids[n]}")
            await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
            await eventually(lambda: _drafts(handle), what=f"order {n}'s draft held")

        for n in range(0, 120, 20):  # started in the order of their ids
            await asyncio.gather(*(start(k) for k in range(n, n + 20)))
        for n in reversed(range(0, 120, 20)):  # their drafts held in the reverse order, a batch after the other
            await asyncio.gather(*(accept(k) for k in range(n, n + 20)))
        query = f'WorkflowId STARTS_WITH "order-PAGED-{task_queue[-8:]}" AND DraftsPending > 0'
        await eventually(lambda: _counted(client, query, 120), what="120 orders with a draft held, as visibility lists them", timeout=120)

        seen: list[str] = []
        page, pages = 1, 1
        while page <= pages:
            started = time.monotonic()
            answer = await fetch(desk_url(base) + f"?page={page}")
            seconds = time.monotonic() - started
            assert answer.status == 200 and seconds < 3, (page, answer.status, seconds)
            rows = re.findall(r'aria-label="Open draft d1 of order ([^"]+)"', answer.body)
            assert 0 < len(rows) <= 50
            seen += [r for r in rows if r.startswith(f"PAGED-{task_queue[-8:]}")]
            pages = int(re.search(r"Page \d+ of (\d+)", answer.text).group(1))
            page += 1
        assert sorted(seen) == ids and len(seen) == len(set(seen))
        batches = [int(r.rsplit("-", 1)[1]) // 20 for r in seen]
        assert batches == sorted(batches, reverse=True)  # oldest draft first: the batch started last held its drafts first
        beyond = await fetch(desk_url(base) + "?page=999999")
        assert beyond.status == 200 and f"Page {pages} of {pages}" in beyond.text  # past the end: the last page
        for odd in ("0", "-3", "abc", "9" * 40):  # before the start, or not a number: the first page
            first = await fetch(desk_url(base) + f"?page={odd}")
            assert first.status == 200 and f"Page 1 of {pages}" in first.text, odd
        await asyncio.gather(*(client.get_workflow_handle(f"order-{i}").terminate("test done") for i in ids))


async def _counted(client: Client, query: str, count: int) -> bool:
    return (await client.count_workflows(query)).count >= count


async def test_a_send_that_fails_says_why_in_the_pages_language_keeps_the_draft_and_the_same_edits_go_once_the_server_is_back(client: Client, settings, smtp, task_queue):
    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en")
        editor = editor_url(base, order["id"], draft)
        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "note": "Thursday", "by": "Léa", "action": "send"}
        smtp.stop()
        try:
            failed = await fetch(editor_url(base, order["id"], draft, "fr"), form)  # an operator reading French
        finally:
            smtp.start()
        assert failed.status == 409, failed.text
        assert f"{draft.id} n'a pas été envoyé :" in failed.text and "Il reste retenu" in failed.text, failed.text
        assert "was not sent" not in failed.text and "still held" not in failed.text  # no English inside the French
        desk = await fetch(desk_url(base))
        assert "Léa tried at" in desk.text and order["id"] in desk.text  # who last touched it
        sent = await fetch(editor, form)  # the same edits, a new attempt (not the failed one's answer again)
        assert sent.status == 200 and f"Draft {draft.id} of order {order['id']} is sent" in sent.text, sent.text
        assert len(await eventually(lambda: the_draft(smtp, draft), what="the email once the server is back")) == 1
        await handle.signal("change_status", {"trigger": "cancel"})


async def test_a_draft_discarded_meanwhile_is_said_with_who_and_nothing_is_sent(client: Client, settings, smtp, task_queue):
    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en")
        editor = editor_url(base, order["id"], draft)
        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "by": "Jonas"}
        dropped = await fetch(editor, {**form, "reason": "phoned instead", "action": "discard"})
        assert dropped.status == 200 and "It will not be sent. The reason is kept with the order: phoned instead" in dropped.text
        late = await fetch(editor, {**form, "by": "Léa", "action": "send"})  # a second operator, on the page still open
        assert late.status == 409 and f"{draft.id} was discarded at" in late.text and "by Jonas" in late.text
        opened = await fetch(editor + f"?draft={draft.id}")  # the link opened again from the desk
        assert opened.status == 409 and "by Jonas" in opened.text
        assert not the_draft(smtp, draft)
        await handle.signal("change_status", {"trigger": "cancel"})


async def test_an_order_whose_worker_is_gone_is_named_and_the_others_are_listed(client: Client, settings, smtp, task_queue):
    web = desk_settings(settings, task_queue)
    async with web_running(web, client) as base:
        async with build_worker(client, web, task_queue=task_queue):
            _, stranded, _ = await order_with_draft(client, task_queue, language="en")
        # Its worker stopped: the order cannot answer its query, and the page says so (200, not 503).
        silent = await fetch(desk_url(base))
        assert silent.status == 200 and f"These orders did not answer within a few seconds (is a worker running?): {stranded['id']}" in silent.text
        async with build_worker(client, web, task_queue=task_queue):
            handle, order, draft = await order_with_draft(client, task_queue, language="en")
            both = await fetch(desk_url(base))
            assert both.status == 200 and order["id"] in both.text and stranded["id"] in both.text and "did not answer" not in both.text
            for workflow_id in (f"order-{stranded['id']}", handle.id):
                await client.get_workflow_handle(workflow_id).terminate("test done")


async def test_files_are_picked_from_the_orders_own_documents_where_attaching_is_allowed(client: Client, settings, smtp, task_queue, tmp_path):
    from printroom.settings import DocumentSettings

    store = tmp_path / "store"
    for name, data in (("PO/flyer.pdf", b"%PDF-1.4 flyer"), ("PO/ticket.pdf", b"%PDF-1.4 ticket"), ("other/secret.pdf", b"%PDF-1.4 secret")):
        (store / name).parent.mkdir(parents=True, exist_ok=True)
        (store / name).write_bytes(data)
    web = desk_settings(settings, task_queue, operator_may_attach=True).model_copy(update={"documents": DocumentSettings(root=store)})
    job = {"id": "J1", "name": "Flyers A5", "product": "Flyer", "quantity": 500, "document": "PO/flyer.pdf", "ticket": "PO/ticket.pdf"}
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language="en", jobs=[job])
        editor = editor_url(base, order["id"], draft)
        page = await fetch(editor)
        assert 'name="attach:PO/flyer.pdf"' in page.body and 'name="attach:PO/ticket.pdf"' in page.body and "secret" not in page.body
        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "by": "Léa"}
        outside = await fetch(editor, {**form, "attach:other/secret.pdf": "other/secret.pdf", "action": "send"})
        assert outside.status == 400 and f"other/secret.pdf is not one of order {order['id']}'s documents" in outside.text
        sent = await fetch(editor, {**form, "attach:PO/ticket.pdf": "PO/ticket.pdf", "action": "send"})
        assert sent.status == 200, sent.text
        email = (await eventually(lambda: the_draft(smtp, draft), what="the email with its ticket"))[0].parsed()
        files = {part.get_filename(): part.get_content() for part in email.iter_attachments()}
        assert files == {"ticket.pdf": b"%PDF-1.4 ticket"}
        await handle.signal("change_status", {"trigger": "cancel"})


async def test_a_bounced_email_is_listed_with_why_and_its_address_corrected_on_the_desk(client: Client, settings, smtp, task_queue):
    """drafts.operator_may_edit_to is off: a copy of a bounced email still offers To, and the order keeps the fix."""
    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, receipt = await started(client, task_queue)
        await handle.signal("email_bounced", bounce(receipt.message_id))
        (draft,) = await eventually(lambda: handle.query("drafts", result_type=list[Draft]), what="the copy held")
        desk = await fetch(desk_url(base))
        assert desk.status == 200 and "bounced: 5.1.1 550 5.1.1 &lt;müller@bücher.example&gt;: Benutzer unbekannt" in desk.body
        editor = editor_url(base, handle.id.removeprefix("order-"), draft)
        page = await fetch(editor)
        assert 'name="to"' in page.body and 'name="cc"' not in page.body and "bounced: 5.1.1" in page.text
        form = {"draft": draft.id, "subject": draft.subject, "text": draft.text, "by": "Léa", "to": MARIE, "action": "send"}
        sent = await fetch(editor, form)
        assert sent.status == 200 and f"to {MARIE}" in sent.text, sent.text
        await eventually(lambda: the_draft(smtp, draft), what="the copy at the corrected address")
        (correction,) = (await order_state(handle)).address_corrections
        assert (correction.original, correction.corrected, correction.by) == (CUSTOMER, MARIE, "Léa")
        await handle.signal("change_status", {"trigger": "cancel"})


async def test_an_older_order_holding_a_newer_draft_is_listed_after_a_newer_order_holding_an_older_draft(client: Client, settings, smtp, task_queue):
    """Oldest draft first, by OldestDraftHeld (when the order's oldest waiting draft was held), not by order start."""
    from tests.conftest import sample_order
    from printroom.workflows.order import OLDEST_DRAFT_HELD, OrderWorkflow

    web = desk_settings(settings, task_queue)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        old = sample_order(f"OLD-{task_queue[-8:]}", language="en")
        old_handle = await client.start_workflow(OrderWorkflow.run, old, id=f"order-{old['id']}", task_queue=task_queue)
        await old_handle.query("state", result_type=OrderState)  # started, its first task done: no draft yet
        new_handle, new, new_draft = await order_with_draft(client, task_queue, id=f"NEW-{task_queue[-8:]}", language="en")
        await old_handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
        (old_draft,) = await eventually(lambda: _drafts(old_handle), what="the older order's draft")
        assert (await old_handle.describe()).start_time < (await new_handle.describe()).start_time
        assert new_draft.created_at < old_draft.created_at

        query = f'WorkflowId IN ("{old_handle.id}", "{new_handle.id}") AND OldestDraftHeld IS NOT NULL'
        await eventually(lambda: _counted(client, query, 2), what="both orders' OldestDraftHeld in visibility")
        assert (await new_handle.describe()).typed_search_attributes.get(OLDEST_DRAFT_HELD) == new_draft.created_at
        desk = (await fetch(desk_url(base))).text
        assert desk.index(new["id"]) < desk.index(old["id"]), "the order whose draft waits longest comes first"

        await new_handle.execute_update("edit_and_send", {"draft_id": new_draft.id, "by": "Léa"}, result_type=dict)
        await eventually(lambda: _cleared(new_handle), what="OldestDraftHeld cleared once no draft waits")
        for handle in (old_handle, new_handle):
            await handle.signal("change_status", {"trigger": "cancel"})


async def _cleared(handle) -> bool:
    from printroom.workflows.order import OLDEST_DRAFT_HELD

    return (await handle.describe()).typed_search_attributes.get(OLDEST_DRAFT_HELD) is None


def test_the_name_is_kept_in_a_secure_cookie_where_the_public_url_is_https(settings):
    """Behind https the cookie is Secure; with no name given nothing is set (a page's refusal keeps the last one)."""
    from types import SimpleNamespace

    from starlette.responses import Response

    from printroom.web.desk import Desk

    web = desk_settings(settings, "q")
    https = web.model_copy(update={"web": web.web.model_copy(update={"public_url": "https://print.example.org"})})
    desk = Desk(SimpleNamespace(settings=https, max_form=64 * 1024))  # type: ignore[arg-type]
    kept = desk._remember(Response(), "Müller, Jonas").headers.getlist("set-cookie")
    assert len(kept) == 3 and all(c.startswith("printroom_by=M%C3%BCller%2C%20Jonas;") and "Secure" in c for c in kept), kept
    assert not desk._remember(Response(), "").headers.getlist("set-cookie")


def test_a_refused_discard_or_send_named_by_the_workflow_is_said_in_the_pages_language():
    """A refusal the workflow named (its words and values, carried by the update's failure or the state's refusal)
    is said in the page's language; one it did not name, as it was given."""
    from printroom.web.desk_text import refusal_said
    from printroom.web.temporal import Refused

    busy = Refused("draft d2 is being sent by another request; wait for its answer", "being_sent", {"draft": "d2"})
    assert refusal_said("de", busy).startswith("d2 wird gerade von einem anderen Operator gesendet")
    assert refusal_said("fr", busy).startswith("d2 est en cours d'envoi")
    assert refusal_said("en", Refused("something else")) == "something else"
    # Named by a worker of another version with other values: said as it was given, never a 500.
    other = Refused("draft d2 is being sent by another request", "being_sent", {"draft_id": "d2"})
    assert refusal_said("fr", other) == "draft d2 is being sent by another request"


def test_a_thousand_orders_of_one_to_three_drafts_are_paged_each_draft_once_50_at_most_straddling_orders_continued():
    from printroom.web.desk import page_slice

    counts = [1 + (n * 7919 + 13) % 3 for n in range(1000)]  # 1-3 drafts each, the same every run
    page, pages, _ = page_slice(counts, 1)
    assert (page, pages) == (1, -(-sum(counts) // 50)) and sum(counts) == 2000
    listed: list[tuple[int, int]] = []  # (order, draft) in the order the pages show them
    straddling = 0
    for number in range(1, pages + 1):
        got, _, picked = page_slice(counts, number)
        shown = [(order, draft) for order, drafts in picked for draft in drafts]
        assert got == number and 0 < len(shown) <= 50 and (len(shown) == 50 or number == pages)
        if picked[0][1].start > 0:  # an order begun on the page before continues here, with its later drafts
            straddling += 1
            assert listed[-1] == (picked[0][0], picked[0][1].start - 1)
        listed += shown
    assert listed == [(order, draft) for order, count in enumerate(counts) for draft in range(count)]  # each once, in order
    assert straddling > 0
    assert page_slice(counts, 10**6)[0] == pages and page_slice(counts, 0)[0] == 1  # past the end, before the start
    assert page_slice([], 1) == (1, 1, [])


async def test_when_temporal_stops_answering_the_desk_says_503_without_the_order_and_lists_it_again_once_back(settings, stoppable_temporal, task_queue):  # noqa: F811
    """It keeps no stale state: a Temporal of the test's own lists the order, is stopped (SIGSTOP: it accepts and
    never answers), and the desk says "try again" without naming the order; continued, the order is listed again."""
    import signal

    from temporalio.contrib.pydantic import pydantic_data_converter

    address, server = stoppable_temporal
    own = await Client.connect(address, data_converter=pydantic_data_converter)
    web = desk_settings(settings, task_queue)
    web = web.model_copy(update={"temporal": web.temporal.model_copy(update={"address": address, "namespace": "default"})})
    async with build_worker(own, web, task_queue=task_queue), web_running(web, None) as base:
        handle, order, _ = await order_with_draft(own, task_queue, language="en")
        on_the_desk = lambda: listed(desk_url(base), order["id"])  # noqa: E731
        assert (await eventually(on_the_desk, what="the order on the desk")).status == 200
        server.send_signal(signal.SIGSTOP)
        try:
            gone = await fetch(desk_url(base))
        finally:
            server.send_signal(signal.SIGCONT)
        assert gone.status == 503 and "Nothing was recorded and nothing is lost" in gone.text and order["id"] not in gone.body
        assert (await eventually(on_the_desk, what="the order listed again once Temporal answers")).status == 200
        await handle.terminate("test done")
