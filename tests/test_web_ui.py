"""The operator's path through the Temporal Web UI, in a real browser: send `change_status` from "Send a Signal",
read the `state` query in the Queries tab, see the order's current details."""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect
from temporalio.client import Client, WorkflowHandle

from printroom.activities.compose import run_tag
from tests.browser import CHROMIUM, CHROMIUM_ARGS, ensure_chromium
from tests.conftest import UI_PORT, eventually, messages_to, order_state, sample_order
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow

UI = f"http://127.0.0.1:{UI_PORT}"
expect.set_options(timeout=20_000)  # the UI fetches after "load"; a loaded CI host is slow


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if why := ensure_chromium():
        if os.environ.get("CI"):
            pytest.fail(why)  # CI runs as root with apt: there, not having Chromium is a failure
        pytest.skip(why)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    yield page
    await context.close()


async def open_order(page: Page, handle: WorkflowHandle[Any, Any], tab: str = "history") -> None:
    # "load", not "networkidle": the UI polls for ever.
    url = f"{UI}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/{tab}"
    await page.goto(url, wait_until="load")


async def send_signal(page: Page, name: str, payload: dict[str, Any]) -> None:
    dialog = await submit(page, "Send a Signal", "signal", name, payload)
    await expect(dialog).to_have_count(0)


async def run_query(page: Page, name: str) -> None:
    """The Queries tab offers printroom's queries (drafts, state) in a select; the first is run on its own."""
    await page.get_by_test_id("query-select-button").click()
    await page.get_by_role("option", name=name, exact=True).click()
    run = page.get_by_role("button", name=re.compile("^(Run|Refresh) Query$"))
    await run.first.click()


async def send_update(page: Page, name: str, payload: dict[str, Any]) -> Locator:
    """More Actions > Send an Update; returns the dialog, still open, to read its answer."""
    return await submit(page, "Send an Update", "update", name, payload)


async def submit(page: Page, action: str, kind: str, name: str, payload: dict[str, Any]) -> Locator:
    """More Actions > `action`, choose `name`, give the JSON, Submit; returns the dialog."""
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name=action).click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_test_id(f"{kind}-select-button").click()
    await dialog.get_by_role("option", name=name, exact=True).click()
    await fill_json(page, dialog, payload)
    await dialog.get_by_test_id("confirm-modal-button").click()
    return dialog


async def fill_json(page: Page, dialog: Locator, payload: dict[str, Any]) -> None:
    editor = dialog.get_by_role("textbox", name="Data")
    await editor.click()
    await page.keyboard.press("Control+A")  # the editor keeps old text otherwise
    await page.keyboard.insert_text(json.dumps(payload))
    await page.keyboard.press("Tab")  # the editor reformats on blur, which moves the Submit button


async def test_an_operator_accepts_an_order_from_the_web_ui_and_reads_its_state(client, dev_worker, smtp, page):
    order = sample_order()
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=dev_worker.task_queue
    )
    await eventually(lambda: messages_to(smtp, "marie@example.org"), what="the order_received email")
    await open_order(page, handle)
    await send_signal(page, "change_status", {"trigger": "accept", "by": "Léa", "comment": "Livraison jeudi"})

    accepted = await eventually(
        lambda: [m for m in messages_to(smtp, "marie@example.org") if "acceptée" in m.parsed()["Subject"]],
        what="the order_accepted email, after the signal from the Web UI",
    )
    assert "Livraison jeudi" in accepted[0].parsed().get_body(("plain",)).get_content()
    state = await order_state(handle)
    assert state.status == "accepted" and state.changes[-1].by == "Léa"

    await open_order(page, handle, "query")
    await run_query(page, "state")
    result = page.locator("body")
    await expect(result).to_contain_text('"status": "accepted"')
    await expect(result).to_contain_text('"by": "Léa"')
    await page.get_by_role("tab", name="User Metadata").click()
    details = page.frame_locator("iframe#user-metadata-current-details")  # the UI renders the Markdown in a frame
    await expect(details.locator("strong", has_text=f"Order {order['id']}")).to_be_visible()
    await expect(details.get_by_role("listitem").filter(has_text="sent order_accepted to marie@example.org")).to_be_visible()


async def test_a_move_the_order_forbids_is_refused_and_the_reason_shows_in_the_state_query(client, dev_worker, page):
    order = sample_order()
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=dev_worker.task_queue
    )
    await open_order(page, handle)
    await send_signal(page, "change_status", {"trigger": "ship"})
    await eventually(lambda: _refused(handle), what="the refusal recorded in state")
    await open_order(page, handle, "query")
    await run_query(page, "state")
    await expect(page.locator("body")).to_contain_text(
        "'ship' is not allowed while the order is 'submitted'; allowed now: accept, reject, cancel"
    )
    assert (await order_state(handle)).status == "submitted"


async def test_operators_find_the_orders_waiting_for_them_by_status_in_the_workflow_list(client, dev_worker, page):
    waiting, accepted = sample_order(), sample_order()
    for order in (waiting, accepted):
        await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=dev_worker.task_queue)
    await client.get_workflow_handle(f"order-{accepted['id']}").signal("change_status", {"trigger": "accept"})
    await eventually(lambda: _status_is(client, accepted, "accepted"), what="the second order accepted")
    # What an operator types in the list's query box; the ids keep other tests' orders out of the list.
    ids = f'WorkflowId="order-{waiting["id"]}" OR WorkflowId="order-{accepted["id"]}"'
    query = quote(f'OrderStatus="submitted" AND ({ids})')
    await page.goto(f"{UI}/namespaces/default/workflows?query={query}", wait_until="load")
    await expect(page.get_by_role("link", name=f"order-{waiting['id']}")).to_be_visible()
    await expect(page.get_by_role("link", name=f"order-{accepted['id']}")).to_have_count(0)


async def _refused(handle: WorkflowHandle[Any, Any]) -> bool:
    return bool((await order_state(handle)).refused)


async def _status_is(client: Client, order: dict[str, Any], status: str) -> bool:
    return (await order_state(client.get_workflow_handle(f"order-{order['id']}"))).status == status


async def test_an_operator_finds_a_held_draft_reads_it_and_sends_it_with_a_note_from_the_web_ui(client, settings, smtp, task_queue, page):
    """E2-E4, W5 in the browser: the order waiting for an operator is found by DraftsPending, the draft read in
    its current details, sent by "Send an Update" with a note; a wrong draft id is answered in the dialog."""
    drafting = settings.model_copy(update={"emails": type(settings.emails)(order_accepted={"edit_before_send": True})})
    async with build_worker(client, drafting, task_queue=task_queue):
        order = sample_order()
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
        await eventually(lambda: _drafts_waiting(handle), what="the acceptance held as draft d1")
        assert [m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org")] == [
            f"Nous avons bien reçu votre commande {order['id']}"  # the acceptance is not sent without an operator
        ]

        query = quote(f'DraftsPending > 0 AND WorkflowId = "{handle.id}"')
        await page.goto(f"{UI}/namespaces/default/workflows?query={query}", wait_until="load")
        await page.get_by_role("link", name=handle.id).click()
        await page.get_by_role("tab", name="User Metadata").click()
        details = page.frame_locator("iframe#user-metadata-current-details")
        await expect(details.locator("body")).to_contain_text("Drafts waiting: 1")
        await expect(details.locator("body")).to_contain_text(f"Votre commande {order['id']} a été acceptée")
        await expect(details.locator("body")).to_contain_text('{"draft_id": "d1"}')

        dialog = await send_update(page, "edit_and_send", {"draft_id": "d9"})
        await expect(dialog).to_contain_text("no draft 'd9' for this order; drafts waiting: d1")
        await dialog.get_by_test_id("cancel-modal-button").click()
        await expect(dialog).to_have_count(0)
        dialog = await send_update(page, "edit_and_send", {"draft_id": "d1", "note": "Livraison jeudi matin", "by": "Léa"})
        await expect(page.get_by_text("Update successful").first).to_be_visible()

        accepted = await eventually(
            lambda: [m.parsed() for m in messages_to(smtp, "marie@example.org") if "acceptée" in m.parsed()["Subject"]],
            what="the acceptance, sent from the Web UI",
        )
        assert "Livraison jeudi matin" in accepted[0].get_body(("plain",)).get_content()
        run = run_tag((await handle.describe()).run_id)  # the draft keeps the Message-ID of this run's automatic email
        assert accepted[0]["Message-ID"] == f"<{order['id']}.order_accepted.1.customer.r{run}@example.com>"
        state = await order_state(handle)
        assert state.drafts_pending == [] and state.changes[-1].trigger == "send_draft" and state.changes[-1].by == "Léa"
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def _drafts_waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    return bool((await order_state(handle)).drafts_pending)
