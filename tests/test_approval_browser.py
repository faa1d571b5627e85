"""An approver's path in a real browser (Debian's Chromium): open the approval email as it arrived, click Approve,
confirm on our page, see the result; the order moves on and the customer hears. A second click and a tampered
link are answered on the page."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, Response, expect
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowUpdateInput, WorkflowUpdateHandle

from printroom.models import ApprovalState
from printroom.settings import Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, messages_to, order_state, sample_order
from tests.test_web_ui import browser, page  # noqa: F401  # the Chromium fixtures
from tests.web_helpers import answer_links, web_running, with_web

HEAD = "head@example.org"
CFO = "cfo@example.org"
RECORDED = re.compile(r"Your answer \(approve, \w{3} \d+, \d{4}, \d+:\d\d:\d\d\W[AP]M\) is recorded")  # and when


async def test_an_approver_approves_from_the_email_in_chromium(client: Client, settings: Settings, smtp, task_queue, page: Page):
    web = with_web(settings)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        order = sample_order(language="en", budget={"limit": "200.00", "approvers": [HEAD]})
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        request = await eventually(lambda: messages_to(smtp, HEAD), what="approval_requested at the SMTP server")
        email_html = request[0].parsed().get_body(("html",)).get_content()

        await page.set_content(email_html)  # the HTML part, as a mail client shows it
        await page.get_by_role("link", name="Approve", exact=True).click()
        await expect(page.get_by_role("heading", name=f"Approve order {order['id']}?")).to_be_visible()
        await expect(page.get_by_text("Flyers A5")).to_be_visible()
        assert (await _approval(client, order)).status == "requested"  # opening the page decided nothing
        await page.get_by_label("Comment").fill("Approved once — Q4 budget")
        await page.get_by_role("button", name="Confirm: approve the order").click()
        await expect(page.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()

        await eventually(lambda: _status(handle, "submitted"), what="the order moving on after the approval")
        approved = await eventually(
            lambda: [m.parsed() for m in messages_to(smtp, "marie@example.org") if "approved" in m.parsed()["Subject"]],
            what="the customer's order_approved",
        )
        assert "Approved once — Q4 budget" in approved[0].get_body(("plain",)).get_content()

        await page.set_content(email_html)  # a second click on the same button: the truth about their answer
        await page.get_by_role("link", name="Approve", exact=True).click()
        await expect(page.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()
        await expect(page.get_by_text(re.compile(r"Your answer \(approve, .+\) is recorded"))).to_be_visible()
        await expect(page.get_by_text("was not recorded")).to_have_count(0)

        approve_url = await page.evaluate("location.href")
        token = approve_url.rsplit("/", 1)[1]
        await page.goto(approve_url.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")))
        await expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
        await expect(page.get_by_text("The link was changed, or cut when it was copied")).to_be_visible()
        assert base in approve_url
        await handle.signal("change_status", {"trigger": "cancel"})


async def _approval(client: Client, order: dict[str, Any]) -> ApprovalState:
    return await client.get_workflow_handle(f"budget-{order['id']}").query("state", result_type=ApprovalState)


async def _status(handle: Any, status: str) -> bool:
    return (await order_state(handle)).status == status


async def _answer(page: Page, act: Any) -> Response:
    """What the approval page answered to a click or a visit: the response itself, for its status."""
    async with page.expect_response(lambda r: "/approvals/" in r.url) as answered:
        await act()
    return await answered.value


async def test_an_approver_who_comes_back_is_told_their_answer_is_recorded_and_no_one_else_is(
    client: Client, settings: Settings, smtp, task_queue, page: Page
):
    """The link's approver opening it again or sending the form again: 200, their answer and when. Another
    approver's link, and the approver's other button: 409, who decided."""
    web = with_web(settings)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client):
        order = sample_order(language="en", budget={"limit": "200.00", "approvers": [HEAD, CFO]})
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        head = answer_links((await eventually(lambda: messages_to(smtp, HEAD), what="approval_requested to head"))[0])
        cfo = answer_links((await eventually(lambda: messages_to(smtp, CFO), what="approval_requested to cfo"))[0])

        second_tab = await page.context.new_page()  # the link opened twice, both forms on screen
        for tab in (page, second_tab):
            await tab.goto(head["approve"], wait_until="load")
        assert (await _answer(page, page.get_by_role("button", name="Confirm: approve the order").click)).status == 200
        await expect(page.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()

        resent = await _answer(second_tab, second_tab.get_by_role("button", name="Confirm: approve the order").click)
        assert resent.status == 200  # the form sent again after the answer was recorded
        await expect(second_tab.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()
        await expect(second_tab.get_by_text(RECORDED)).to_be_visible()

        reopened = await _answer(page, lambda: page.goto(head["approve"], wait_until="load"))
        assert reopened.status == 200
        await expect(page.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()
        await expect(page.get_by_text(RECORDED)).to_be_visible()
        await expect(page.locator("form")).to_have_count(0)

        for other in (head["reject"], cfo["approve"], cfo["reject"]):  # the other button; the other approver
            refused = await _answer(page, lambda: page.goto(other, wait_until="load"))
            assert refused.status == 409
            await expect(page.get_by_role("heading", name="Your answer was not recorded")).to_be_visible()
            await expect(page.get_by_text(f"Order {order['id']} was already approved by {HEAD} on")).to_be_visible()
        state = await _approval(client, order)
        assert (state.decision.by, state.refused) == (HEAD, [])
        await handle.signal("change_status", {"trigger": "cancel"})


class _LateConfirmation(Interceptor):
    """The server takes the decision, but its confirmation reaches the page after the page stopped waiting."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Late(next)


class _Late(OutboundInterceptor):
    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        handle = await super().start_workflow_update(input)
        await asyncio.sleep(4)
        return handle


async def test_an_answer_whose_confirmation_came_late_shows_as_recorded_when_the_link_is_opened_again(
    client: Client, settings: Settings, smtp, task_queue, page: Page, monkeypatch: pytest.MonkeyPatch
):
    """The 504 page says "open the link again to see": doing so shows the answer recorded, never "not recorded"."""
    monkeypatch.setattr("printroom.web.temporal.CALL_TIMEOUT", timedelta(seconds=1))  # the page waits 2 s for a decision
    late = Client(client.service_client, namespace=client.namespace, data_converter=client.data_converter, interceptors=[_LateConfirmation()])
    web = with_web(settings)
    async with build_worker(client, web, task_queue=task_queue), web_running(web, late):
        order = sample_order(language="en", budget={"limit": "200.00", "approvers": [HEAD]})
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        links = answer_links((await eventually(lambda: messages_to(smtp, HEAD), what="approval_requested"))[0])
        await page.goto(links["approve"], wait_until="load")
        timed_out = await _answer(page, page.get_by_role("button", name="Confirm: approve the order").click)
        assert timed_out.status == 504
        await expect(page.get_by_role("heading", name="Your answer may have been recorded")).to_be_visible()

        reopened = await _answer(page, lambda: page.goto(links["approve"], wait_until="load"))
        assert reopened.status == 200
        await expect(page.get_by_role("heading", name=f"Order {order['id']} is approved")).to_be_visible()
        await expect(page.get_by_text(RECORDED)).to_be_visible()
        await handle.signal("change_status", {"trigger": "cancel"})
