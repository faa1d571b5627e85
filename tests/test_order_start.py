"""An order started through a printroom client costs no activity when its start emails are off (memo
`printroom.start`) and no upsert for its first status (set at its start); started any other way, the worker's
settings decide and its first task publishes its status, as before."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from printroom import PrintroomPlugin
from printroom.cli.capture import SmtpCapture
from printroom.models import ORDER_START_MEMO
from printroom.settings import Settings
from printroom.worker.order_start import with_first_status
from printroom.workflows.order import DRAFTS_PENDING, ORDER_STATUS
from tests.conftest import event_names, eventually, messages_to, order_state, sample_order, task_settled

RECEIVED_OFF = {"order_received": {"send": "never"}, "order_received_operator": {"send": "never"}}


def app_client(client: Client, settings: Settings, namespace: str | None = None) -> Client:
    """The client of an application that runs printroom: the plugin on the client, its workers built on it."""
    return Client(client.service_client, namespace=namespace or client.namespace, plugins=[PrintroomPlugin(settings)])


def received_off_client(client: Client, settings: Settings) -> Client:
    """An application's client whose settings turn both start emails off."""
    return app_client(client, settings.model_copy(update={"emails": type(settings.emails)(**RECEIVED_OFF)}))


def status_and_drafts(found: TypedSearchAttributes) -> tuple[Any, Any]:
    """An order's OrderStatus and DraftsPending search attributes; ("submitted", 0) is the first status."""
    return found.get(ORDER_STATUS), found.get(DRAFTS_PENDING)


async def test_an_order_whose_start_emails_are_off_runs_no_activity_in_its_first_task(client, settings, smtp: SmtpCapture, task_queue):
    app = received_off_client(client, settings)
    data = sample_order(customer={"name": "Jürgen Müller", "email": "müller@bücher.example", "wants_status_emails": True})
    async with Worker(app, task_queue=task_queue):
        handle = await app.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue)
        await eventually(lambda: task_settled(handle), what="the order's first workflow task")
        assert await event_names(handle) == [
            "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED",
        ]  # fmt: skip
        # Its status and drafts were set when it started: operators find it by them, with nothing upserted.
        described = await handle.describe()
        assert status_and_drafts(described.typed_search_attributes) == ("submitted", 0)
        memo = await described.memo_value(ORDER_START_MEMO)
        assert memo == {"emails_off": ["order_received", "order_received_operator"]}
        state = await order_state(handle)
        assert state.emails_sent == [] and state.emails_pending == []
        assert "order_received: not sent, off in the settings of the client that started the order" in state.email_notes
        # The order goes on as any other: its next email is asked of the worker and sent.
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        await handle.result()
    assert [m.parsed()["Subject"] for m in messages_to(smtp, "müller@xn--bcher-kva.example")]  # the domain as SMTP carries it == [f"Commande {data['id']} annulée"]


async def test_a_client_whose_settings_send_the_start_emails_tells_the_order_nothing_is_off(client, settings, smtp, task_queue):
    app = app_client(client, settings)
    data = sample_order()
    async with Worker(app, task_queue=task_queue):
        handle = await app.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue)
        await eventually(lambda: len(messages_to(smtp, "marie@example.org")) == 1, what="order_received")
        assert await (await handle.describe()).memo_value(ORDER_START_MEMO) == {"emails_off": []}
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_an_order_started_with_an_update_carries_the_memo_and_publishes_its_first_status_itself(client, settings, task_queue):
    """The SDK settles an update-with-start's start once: printroom adds no search attribute it could not take
    back if the namespace refused it, and the order's first task publishes its status, as without a plugin."""
    app = received_off_client(client, settings)
    data = sample_order()
    start = WithStartWorkflowOperation("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue,
                                       id_conflict_policy=WorkflowIDConflictPolicy.FAIL)  # fmt: skip
    async with Worker(app, task_queue=task_queue):
        with pytest.raises(WorkflowUpdateFailedError):  # no draft waits yet: refused, the order started all the same
            await app.execute_update_with_start_workflow("edit_and_send", {"draft_id": "d1"}, start_workflow_operation=start)
        handle = await start.workflow_handle()
        await eventually(lambda: task_settled(handle), what="the order's first workflow task")
        described = await handle.describe()
        assert status_and_drafts(described.typed_search_attributes) == ("submitted", 0)
        assert "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES" in await event_names(handle)
        assert await described.memo_value(ORDER_START_MEMO) == {"emails_off": ["order_received", "order_received_operator"]}
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_the_callers_own_search_attributes_are_kept_and_a_first_status_it_set_is_corrected(client, settings, task_queue):
    """An application may start orders with search attributes of its own: printroom adds only the ones the caller
    left out, and the order's first task publishes what differs from what it was started with."""
    app = received_off_client(client, settings)
    async with Worker(app, task_queue=task_queue):
        data = sample_order()
        given = TypedSearchAttributes([SearchAttributePair(ORDER_STATUS, "imported")])
        handle = await app.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue, search_attributes=given)
        await eventually(lambda: task_settled(handle), what="the order's first workflow task")
        found = (await handle.describe()).typed_search_attributes
        assert status_and_drafts(found) == ("submitted", 0)
        assert (await event_names(handle)).count("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 1
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {"OrderStatus": "submitted", "DraftsPending": 0}),
        (TypedSearchAttributes([]), {"OrderStatus": "submitted", "DraftsPending": 0}),
        (TypedSearchAttributes([SearchAttributePair(DRAFTS_PENDING, 2)]), {"OrderStatus": "submitted", "DraftsPending": 2}),
    ],
)
def test_the_first_status_is_added_typed_beside_the_callers_own(given, expected):
    typed = with_first_status(given)
    assert isinstance(typed, TypedSearchAttributes)  # typed, so the workflow reads them whatever the server adds
    assert {pair.key.name: pair.value for pair in typed} == expected


def test_only_a_refusal_naming_one_of_the_added_attributes_starts_the_order_without_them():
    from printroom.worker.order_start import _names_one_of

    added = ["OrderStatus", "DraftsPending"]
    assert _names_one_of("Namespace shop has no mapping defined for search attribute OrderStatus", added)
    assert _names_one_of("search attribute DraftsPending is not defined", added)
    assert not _names_one_of("Namespace shop has no mapping defined for search attribute OrderStatusCode", added)
    assert not _names_one_of("search attribute Shop is not defined", added)


def test_a_caller_using_the_untyped_form_keeps_it_and_its_own_values():
    assert with_first_status({"OrderStatus": ["imported"], "Shop": ["Lyon"]}) == {
        "OrderStatus": ["imported"], "DraftsPending": [0], "Shop": ["Lyon"],
    }  # fmt: skip


async def test_a_namespace_without_the_status_attributes_still_takes_the_order_and_says_why(client, settings, caplog):
    """An application that starts orders before any printroom worker has registered the search attributes: the
    order is started as the caller wrote it (its worker publishes the status once it has registered them), with
    the reason logged, instead of a refused start."""
    namespace = f"no-attributes-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    app = app_client(client, settings, namespace)
    data = sample_order()
    with caplog.at_level(logging.WARNING, logger="printroom.client"):
        handle = await app.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue="nobody-polls")
    described = await handle.describe()
    assert described.typed_search_attributes.get(ORDER_STATUS) is None
    assert await described.memo_value(ORDER_START_MEMO) == {"emails_off": []}
    (record,) = [r for r in caplog.records if r.name == "printroom.client"]
    assert f"order order-{data['id']} started without them" in record.getMessage()
    assert "search attribute OrderStatus" in str(record.args[1]) or "search attribute DraftsPending" in str(record.args[1])  # the server's words
    await handle.terminate("test over")


async def test_an_order_started_without_the_memo_or_with_a_broken_one_asks_the_worker(client, settings, smtp, task_queue):
    """The `temporal` CLI writes no memo, and a memo is whatever its writer wrote: the worker's settings decide
    (here: send), and a memo that does not read never fails the order's task."""
    async with Worker(app_client(client, settings), task_queue=task_queue):
        for memo in (None, {ORDER_START_MEMO: "off, please"}, {ORDER_START_MEMO: {"emails_off": "order_received"}}):
            data = sample_order(customer={"email": f"c{len(smtp.messages)}@example.org"})
            handle = await client.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue, memo=memo)
            await eventually(lambda: len(messages_to(smtp, data["customer"]["email"])) == 1, what=f"order_received with memo {memo}")
            await eventually(lambda: _has("MARKER_RECORDED", handle), what="the first task's marker (the worker asked)")
            found = (await handle.describe()).typed_search_attributes  # published by its first task, as before
            assert status_and_drafts(found) == ("submitted", 0)
            await handle.signal("change_status", {"trigger": "cancel"})
            await handle.result()


async def _has(event: str, handle: WorkflowHandle[Any, Any]) -> bool:
    return event in await event_names(handle)
