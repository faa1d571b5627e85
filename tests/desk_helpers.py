"""An order with a held draft and the desk's link, as the desk tests (HTTP and Chromium) start from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.client import Client, WorkflowHandle

from printroom.links import DeskLink, DraftLink, LinkSigner
from printroom.models import Draft
from printroom.settings import DraftSettings, EmailPolicies, Settings
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, sample_order
from tests.web_helpers import SECRET, fetch, with_web

SIGNER = LinkSigner(SECRET.encode())


def desk_settings(settings: Settings, task_queue: str, **drafts: Any) -> Settings:
    """`printroom web` on a free port, listing the orders of `task_queue`; order_accepted held for an operator,
    drafts settings as given."""
    held = settings.model_copy(
        update={
            "emails": EmailPolicies.model_validate({"order_accepted": {"edit_before_send": True}}),
            "drafts": DraftSettings.model_validate(drafts),
            "temporal": settings.temporal.model_copy(update={"task_queue": task_queue}),
        }
    )
    return with_web(held)


def desk_url(base: str, lang: str = "en", valid_for: timedelta = timedelta(days=7)) -> str:
    return f"{base}/{lang}/desk/{SIGNER.desk(DeskLink(datetime.now(timezone.utc) + valid_for))}"


def editor_url(base: str, order_id: str, draft: Draft, lang: str = "en", valid_for: timedelta = timedelta(days=1)) -> str:
    expires = datetime.now(timezone.utc) + valid_for
    return f"{base}/{lang}/drafts/{SIGNER.draft(DraftLink(order_id, draft.message_id, expires))}"


async def order_with_draft(client: Client, task_queue: str, **changes: Any) -> tuple[WorkflowHandle[Any, Any], dict[str, Any], Draft]:
    """An order accepted by Léa, its order_accepted held as d1."""
    order = sample_order(**changes)
    handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
    await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
    drafts = await eventually(lambda: _drafts(handle), what="the held order_accepted")
    return handle, order, drafts[0]


async def _drafts(handle: WorkflowHandle[Any, Any]) -> list[Draft] | None:
    return await handle.query("drafts", result_type=list[Draft]) or None


async def listed(url: str, order_id: str) -> Any:
    """The desk page at `url` once it answers 200 and lists `order_id`; None until then."""
    page = await fetch(url)
    return page if page.status == 200 and order_id in page.text else None
