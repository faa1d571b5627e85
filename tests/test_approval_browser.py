"""An approver's path in a real browser (Debian's Chromium): open the approval email as it arrived, click Approve,
confirm on our page, see the result; the order moves on and the customer hears. A second click and a tampered
link are answered on the page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect
from temporalio.client import Client

from printroom.models import ApprovalState
from printroom.settings import Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, messages_to, order_state, sample_order
from tests.test_web_ui import browser, page  # noqa: F401  # the Chromium fixtures
from tests.web_helpers import web_running, with_web

HEAD = "head@example.org"


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

        await page.set_content(email_html)  # a second click on the same button
        await page.get_by_role("link", name="Approve", exact=True).click()
        await expect(page.get_by_role("heading", name="Your answer was not recorded")).to_be_visible()
        await expect(page.get_by_text(f"Order {order['id']} was already approved by {HEAD} on")).to_be_visible()

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
