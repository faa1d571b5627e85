"""Encryption against a real Temporal dev server keeping its SQLite file: with keys, the file holds no customer
name, address, subject or draft text (without, it does); orders started in clear keep running and replay once
encryption is on, and stay readable once it is off again; a missing key is a workflow task failure naming the key
id, until the key is back; and the Web UI shows the decoded order through `printroom web`'s codec endpoint."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from playwright.async_api import expect
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from printroom import PrintroomPlugin
from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import SmtpCapture
from printroom.models import Draft
from printroom.settings import Settings, TemporalSettings
from printroom.worker.key_check import _read_keys, check_keys
from printroom.worker.plugin import WORKFLOW_TYPES
from printroom.worker.startup import StartupError
from printroom.workflows.order import SEARCH_ATTRIBUTES, order_summary
from printroom.models import Order
from tests.conftest import SERVER_STARTUP, eventually, free_port, history_bytes, messages_to, order_state
from tests.conftest import printroom_beside_a_worker as printroom
from tests.test_web_ui import browser, run_query, send_signal  # noqa: F401  # browser: the Web UI tests' fixture, Debian's Chromium
from tests.desk_helpers import desk_settings, desk_url, editor_url, listed, order_with_draft
from tests.web_helpers import fetch, web_running, with_web

UI_PORT, WEB_PORT = free_port(), free_port()
UI = f"http://127.0.0.1:{UI_PORT}"
K1 = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
K2 = f"k2:{base64.b64encode(os.urandom(32)).decode()}"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[WorkflowEnvironment, Path]]:
    """A dev server writing its SQLite file, whose Web UI decodes through printroom web on WEB_PORT (as `make run`)."""
    database = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(database),
        ui=True,
        ui_port=UI_PORT,
        dev_server_extra_args=["--ui-disable-news-fetch", "--ui-codec-endpoint", f"http://127.0.0.1:{WEB_PORT}/codec"],
        dev_server_startup_timeout=SERVER_STARTUP,
    )
    yield env, database
    await env.shutdown()


def keyed(settings: Settings, keys: str | None, *, encrypt: bool = True, **emails: Any) -> Settings:
    """The test's settings with these keys (None: encryption off) and these email policies."""
    temporal = TemporalSettings(encryption_key=keys, encrypt=encrypt, ui_url=UI) if keys else TemporalSettings(ui_url=UI)
    update: dict[str, Any] = {"temporal": temporal}
    if emails:
        update["emails"] = type(settings.emails)(**emails)
    return settings.model_copy(update=update)


async def client_for(env: WorkflowEnvironment, settings: Settings) -> Client:
    """A client as an application makes one: the plugin's converter (and codec), for it and its workers."""
    return await Client.connect(env.client.service_client.config.target_host, plugins=[PrintroomPlugin(settings, check_templates=False)])


def customer(tag: str) -> dict[str, Any]:
    """An order whose every customer field is unique to this test, ASCII so the bytes are found as written."""
    return {
        "id": f"PO-{tag}", "shop": "default", "language": "en",
        "customer": {"name": f"Ada Lovelace {tag}", "email": f"ada.{tag}@example.org", "wants_status_emails": True},
        "price": {"amount": "240.00", "currency": "EUR"},
        "jobs": [{"id": "J1", "name": f"Flyers {tag}", "product": "Flyer", "quantity": 500}],
    }  # fmt: skip


async def drafted_order(client: Client, task_queue: str, smtp: SmtpCapture, tag: str) -> tuple[WorkflowHandle[Any, Any], list[bytes]]:
    """An order accepted, its acceptance held as a draft and sent with a note; returns the handle and what a
    reader of the database must not find: name, address, job, subject, the draft's text, the note."""
    order = customer(tag)
    handle = await client.start_workflow(
        "OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue, static_summary=order_summary(Order.model_validate(order))
    )
    await handle.signal("change_status", {"trigger": "accept", "by": "Lea"})
    drafts = await eventually(lambda: _drafts(handle), what="the acceptance held as a draft")
    note = f"Delivery on Thursday {tag}"
    await handle.execute_update("edit_and_send", {"draft_id": drafts[0].id, "note": note, "by": "Lea"})
    sent = await eventually(lambda: [m for m in messages_to(smtp, order["customer"]["email"]) if "accepted" in m.parsed()["Subject"]], what="the draft sent")
    draft_line = next(line for line in drafts[0].text.splitlines() if order["customer"]["name"] in line)
    markers = [order["customer"]["name"], order["customer"]["email"], order["jobs"][0]["name"], drafts[0].subject, draft_line, note]
    assert note in sent[0].parsed().get_body(("plain",)).get_content()
    return handle, [m.encode("utf-8") for m in markers]


async def _drafts(handle: WorkflowHandle[Any, Any]) -> list[Draft] | None:
    return await handle.query("drafts", result_type=list[Draft]) or None


def stored(database: Path) -> bytes:
    """Every byte the dev server keeps: the SQLite file and its journals."""
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))


async def test_with_keys_the_servers_database_holds_no_customer_data_and_without_it_does(server, settings, smtp, task_queue):
    env, database = server
    drafting = {"order_accepted": {"edit_before_send": True}}
    encrypted = await client_for(env, keyed(settings, K1, **drafting))
    async with Worker(encrypted, task_queue=task_queue):
        secret_order, secret = await drafted_order(encrypted, task_queue, smtp, f"enc{uuid.uuid4().hex[:6]}")
        # The order is read as ever through the codec: state, search attributes and all.
        assert (await order_state(secret_order)).status == "accepted"
    clear = await client_for(env, keyed(settings, None, **drafting))
    # On a queue of its own: a worker without keys refuses to start beside the encrypted order still open.
    async with Worker(clear, task_queue=f"{task_queue}-clear"):
        _, visible = await drafted_order(clear, f"{task_queue}-clear", smtp, f"clr{uuid.uuid4().hex[:6]}")
    kept = stored(database)
    assert [m for m in visible if m in kept] == visible  # the check sees data in clear: it can fail
    assert [m for m in secret if m in kept] == []
    assert f"order-{secret_order.id.removeprefix('order-')}".encode() in kept  # the workflow id stays readable


async def received(client: Client, task_queue: str, smtp: SmtpCapture, tag: str) -> tuple[WorkflowHandle[Any, Any], str]:
    """An order started with this client's keys, run by its worker until order_received is sent; then no worker."""
    order = customer(f"{tag}{uuid.uuid4().hex[:6]}")
    address = order["customer"]["email"]
    async with Worker(client, task_queue=task_queue):
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await eventually(lambda: messages_to(smtp, address), what="order_received")
    return handle, address


async def test_orders_started_in_clear_keep_running_and_replaying_with_encryption_on_and_then_off(server, settings, smtp, task_queue):
    env, _ = server
    handle, address = await received(await client_for(env, keyed(settings, None)), task_queue, smtp, "old")
    # Encryption on; no workflow cache, so each task replays the history written in clear first.
    on = await client_for(env, keyed(settings, K1))
    async with Worker(on, task_queue=task_queue, max_cached_workflows=0):
        await on.get_workflow_handle(handle.id).signal("change_status", {"trigger": "accept", "by": "Lea"})
        await eventually(lambda: len(messages_to(smtp, address)) == 2, what="order_accepted, with encryption on")
    # Off again, the key kept: new payloads in clear, the encrypted ones still read.
    off = await client_for(env, keyed(settings, K1, encrypt=False))
    async with Worker(off, task_queue=task_queue, max_cached_workflows=0):
        await off.get_workflow_handle(handle.id).signal("change_status", {"trigger": "start_production", "by": "Lea"})
        await eventually(lambda: len(messages_to(smtp, address)) == 3, what="order_in_production, with encryption off")
        state = await order_state(off.get_workflow_handle(handle.id))
    assert [(c.dest, c.by) for c in state.changes if c.by] == [("accepted", "Lea"), ("in_production", "Lea")]
    history = await off.get_workflow_handle(handle.id).fetch_history()
    encodings = {p.metadata.get("encoding") for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
                 for p in e.workflow_execution_signaled_event_attributes.input.payloads}  # fmt: skip
    assert encodings == {b"binary/encrypted", b"json/plain"}  # one signal written encrypted, one in clear
    replayer = Replayer(workflows=[], plugins=[PrintroomPlugin(keyed(settings, K1), check_templates=False)])
    assert (await replayer.replay_workflow(history)).replay_failure is None


async def test_a_key_missing_for_open_orders_stops_a_worker_at_start_naming_the_key_and_the_orders(server, settings, smtp, task_queue):
    env, _ = server
    handle, _ = await received(await client_for(env, keyed(settings, K1)), task_queue, smtp, "start")
    for keys, given in ((K2, "the keys given are k2"), (None, "no encryption key is given")):
        worker = Worker(await client_for(env, keyed(settings, keys)), task_queue=task_queue)
        with pytest.raises(StartupError) as refused:
            await asyncio.wait_for(worker.run(), 30)
        assert f"were encrypted with keys this worker lacks (key 'k1': {handle.id}); {given}" in str(refused.value)
        assert "Add those keys to temporal.encryption_key_file" in str(refused.value)


async def test_a_key_used_after_an_orders_start_stops_a_worker_that_lacks_it(server, settings, smtp, task_queue):
    """Started in clear, signalled under k1: the key is in a later event, never in the first one."""
    env, _ = server
    handle, address = await received(await client_for(env, keyed(settings, None)), task_queue, smtp, "later")
    on = await client_for(env, keyed(settings, K1))
    async with Worker(on, task_queue=task_queue):
        await on.get_workflow_handle(handle.id).signal("change_status", {"trigger": "accept", "by": "Lea"})
        await eventually(lambda: len(messages_to(smtp, address)) == 2, what="order_accepted, signalled under k1")
    try:
        for keys, given in ((K2, "the keys given are k2"), (None, "no encryption key is given")):
            worker = Worker(await client_for(env, keyed(settings, keys)), task_queue=task_queue)
            with pytest.raises(StartupError) as refused:
                await asyncio.wait_for(worker.run(), 30)
            assert f"were encrypted with keys this worker lacks (key 'k1': {handle.id}); {given}" in str(refused.value)
    finally:
        await handle.terminate("test over")


async def started_without_a_worker(client: Client, task_queue: str, tag: str) -> WorkflowHandle[Any, Any]:
    """An order started (its input encrypted with the client's key) on a queue no worker polls: open, untouched."""
    order = customer(f"{tag}{uuid.uuid4().hex[:6]}")
    return await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)


async def listed_open(client: Client, task_queue: str, count: int) -> bool:
    found = [w async for w in client.list_workflows(f'ExecutionStatus = "Running" AND TaskQueue = "{task_queue}"')]
    return len(found) == count


async def test_the_key_check_reads_the_oldest_open_orders_and_warns_when_it_did_not_read_them_all(server, settings, task_queue, caplog):
    """The oldest order holds the dropped key: visibility lists it last, the check must read it first."""
    env, _ = server
    caplog.set_level(logging.INFO, logger="printroom.worker")
    oldest = await started_without_a_worker(await client_for(env, keyed(settings, K1)), task_queue, "oldest")
    newer = await client_for(env, keyed(settings, K2))
    handles = [oldest] + [await started_without_a_worker(newer, task_queue, f"newer{n}") for n in range(3)]
    try:
        await eventually(lambda: listed_open(newer, task_queue, 4), what="the four orders listed")
        k2_only, both = keyed(settings, K2).temporal.key_ring(), keyed(settings, f"{K1}\n{K2}").temporal.key_ring()
        with pytest.raises(StartupError, match=rf"were encrypted with keys this worker lacks \(key 'k1': {oldest.id}\)"):
            await check_keys(newer, k2_only, task_queue, WORKFLOW_TYPES, most=2)
        caplog.clear()
        await check_keys(newer, both, task_queue, WORKFLOW_TYPES, most=2)
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
            (logging.WARNING, f"the keys of the 2 oldest of 4 open workflows on {task_queue!r} were checked, not of the 2 newest; "
                              "a key missing for those shows when their tasks fail, naming it"),
        ]  # fmt: skip
        caplog.clear()
        await check_keys(newer, both, task_queue, WORKFLOW_TYPES)  # all of them read: nothing to say
        assert caplog.records == []
    finally:
        for handle in handles:
            await handle.terminate("test over")


async def test_a_history_that_cannot_be_read_is_skipped_and_said_and_the_check_has_a_time_limit(server, settings, task_queue, caplog):
    env, _ = server
    caplog.set_level(logging.INFO, logger="printroom.worker")
    client = await client_for(env, keyed(settings, K1))
    handle = await started_without_a_worker(client, task_queue, "limit")
    try:
        await eventually(lambda: listed_open(client, task_queue, 1), what="the order listed")
        # A workflow deleted since the listing (NOT_FOUND from the real server) beside one that is read.
        found: dict[str, frozenset[str]] = {}
        unread: dict[str, str] = {}
        await _read_keys(client, [(datetime.now(timezone.utc), "order-deleted-since", None), (datetime.now(timezone.utc), handle.id, None)], found, unread)
        assert found == {handle.id: {"k1"}} and list(unread) == ["order-deleted-since"]
        assert unread["order-deleted-since"].startswith("NOT_FOUND: ")
        # Past its time limit the check lets the worker start, saying so; even with the key missing, as not read.
        caplog.clear()
        await check_keys(client, keyed(settings, K2).temporal.key_ring(), task_queue, WORKFLOW_TYPES, time_limit=0)
        [said] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert said.getMessage().startswith(f"the keys of open workflows on {task_queue!r} were checked for 0 s, the time limit: 0 of ")
        assert "the worker starts, and a key missing for the others shows when their tasks fail" in said.getMessage()
    finally:
        await handle.terminate("test over")


async def test_a_key_a_worker_lacks_fails_the_workflow_task_naming_it_until_a_worker_with_the_key_takes_it(server, settings, smtp, task_queue, caplog):
    """Keys rolled out host by host: a client already encrypts with the new k2 while a worker knows k1 only."""
    env, _ = server
    caplog.set_level(logging.INFO, logger="printroom.worker")
    old = await client_for(env, keyed(settings, K1))
    handle, address = await received(old, task_queue, smtp, "key")
    rotated = await client_for(env, keyed(settings, f"{K1}\n{K2}"))
    async with Worker(old, task_queue=task_queue):
        # Answering queries: past its start-up key check, which would refuse a k2 payload already in the history.
        assert (await order_state(old.get_workflow_handle(handle.id))).status == "submitted"
        await rotated.get_workflow_handle(handle.id).signal("change_status", {"trigger": "accept", "by": "Lea"})
        failed = await eventually(lambda: _task_failure(rotated, handle.id), what="the workflow task failure")
    expected = "a payload is encrypted with key 'k2', which is not among the keys given (k1); add key 'k2' back"
    assert expected in failed  # as the Web UI shows it, in the order's history
    assert any(expected in r.getMessage() or expected in str(r.exc_info and r.exc_info[1]) for r in caplog.records)
    assert "payload encryption: keys k1 (k1 encrypts)" in caplog.messages  # which keys the worker has, said at its start
    assert len(messages_to(smtp, address)) == 1
    described = await rotated.get_workflow_handle(handle.id).describe()
    assert described.status is not None and described.status.name == "RUNNING"  # waiting, not failed for good
    # A worker with both keys: the order moves on with the signal it had.
    async with Worker(rotated, task_queue=task_queue):
        await eventually(lambda: len(messages_to(smtp, address)) == 2, what="order_accepted once a worker has k2")
        await eventually(lambda: _accepted(rotated.get_workflow_handle(handle.id)), what="the order accepted")


async def test_a_new_key_rolled_out_decrypt_only_first_is_read_by_hosts_not_given_it_yet(server, settings, smtp, task_queue):
    """The staged rotation: k2 reaches a host while encrypt_with still names k1; a worker that has only k1 runs on."""
    env, _ = server
    old = await client_for(env, keyed(settings, K1))
    handle, address = await received(old, task_queue, smtp, "staged")
    staged = settings.model_copy(update={"temporal": TemporalSettings(encryption_key=f"{K1}\n{K2}", encrypt_with="k1", ui_url=UI)})
    rotating = await client_for(env, staged)
    async with Worker(old, task_queue=task_queue):
        await rotating.get_workflow_handle(handle.id).signal("change_status", {"trigger": "accept", "by": "Lea"})
        await eventually(lambda: len(messages_to(smtp, address)) == 2, what="order_accepted, on the worker without k2")
    history = await rotating.get_workflow_handle(handle.id).fetch_history()
    keys = {p.metadata.get("encryption-key-id") for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
            for p in e.workflow_execution_signaled_event_attributes.input.payloads}  # fmt: skip
    assert keys == {b"k1"}


async def _accepted(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the `state` query says accepted; the server answers no query while the last workflow task is failed."""
    try:
        return (await order_state(handle)).status == "accepted"
    except RPCError:
        return False


async def test_printroom_commands_read_encrypted_orders_with_the_key_and_name_the_key_they_lack(server, settings, smtp, task_queue):
    env, _ = server
    encrypted = await client_for(env, keyed(settings, K1, order_accepted={"edit_before_send": True}))
    async with Worker(encrypted, task_queue=task_queue):
        handle, _ = await drafted_order(encrypted, task_queue, smtp, f"cli{uuid.uuid4().hex[:6]}")
        order_id = handle.id.removeprefix("order-")
        where = {"PRINTROOM_TEMPORAL__ADDRESS": env.client.service_client.config.target_host, "PRINTROOM_TEMPORAL__NAMESPACE": "default"}
        shown = await printroom("drafts", "show", order_id, PRINTROOM_TEMPORAL__ENCRYPTION_KEY=K1, **where)
        assert shown.returncode == 0 and shown.stdout.strip() == "no drafts waiting", shown.stderr  # the answer, decrypted
        other = await printroom("drafts", "show", order_id, PRINTROOM_TEMPORAL__ENCRYPTION_KEY=K2, **where)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "a payload is encrypted with key 'k1', which is not among the keys given (k2)" in other.stderr


async def test_printroom_webs_own_client_shows_an_encrypted_orders_desk_entry_and_draft_decoded(server, settings, smtp, task_queue):
    """`printroom web` as deployed: no client handed to it, it connects by itself with the settings' keys."""
    env, _ = server
    encrypted = keyed(settings, K1)
    where = {"address": env.client.service_client.config.target_host, "namespace": "default"}
    web = desk_settings(encrypted.model_copy(update={"temporal": encrypted.temporal.model_copy(update=where)}), task_queue)
    web = web.model_copy(update={"web": web.web.model_copy(update={"codec_auth": "proxy"})})
    client = await client_for(env, web)
    order = customer(f"desk{uuid.uuid4().hex[:6]}")
    name = order["customer"]["name"]
    async with Worker(client, task_queue=task_queue), web_running(web, None) as base:
        handle, order, _ = await order_with_draft(client, task_queue, **order)
        [draft] = await _drafts(handle) or []  # one draft held: the acceptance
        desk = await eventually(lambda: listed(desk_url(base), order["id"]), what="the order on the desk")
        assert desk.status == 200 and name in desk.text and draft.subject in desk.text
        editor = await fetch(editor_url(base, order["id"], draft))
        assert editor.status == 200 and f"Draft {draft.id} of order {order['id']}" in editor.text
        assert name in editor.text and order["customer"]["email"] in editor.text  # the draft's text, decoded
    stored_events = await history_bytes(handle)
    assert name.encode() not in stored_events and draft.subject.encode() not in stored_events  # as stored: encrypted, so the page did decode it
    await handle.terminate("test over")


async def _task_failure(client: Client, workflow_id: str) -> str | None:
    """The message of the order's failed workflow task, as the Web UI shows it (decoded by the codec)."""
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
            await client.data_converter.payload_codec.decode_failure(failure)  # type: ignore[union-attr]
            return str(client.data_converter.failure_converter.from_failure(failure, client.data_converter.payload_converter))
    return None


async def test_the_web_ui_shows_the_decoded_order_through_the_codec_endpoint_and_ciphertext_without_the_token(server, settings, smtp, task_queue, browser):
    env, _ = server
    encrypted = keyed(settings, K1)
    client = await client_for(env, encrypted)
    order = customer(f"ui{uuid.uuid4().hex[:6]}")
    name = order["customer"]["name"]
    web = with_web(encrypted, WEB_PORT)
    web = web.model_copy(update={"web": web.web.model_copy(update={"codec_auth": "proxy"})})  # as `make run` serves it
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        async with Worker(client, task_queue=task_queue):
            handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
            await eventually(lambda: messages_to(smtp, order["customer"]["email"]), what="order_received")
            url = f"{UI}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
            async with web_running(web, client):
                await page.goto(url, wait_until="load")
                await expect(page.locator("body")).to_contain_text(name, timeout=30_000)  # the input, decoded
                await page.get_by_role("tab", name="User Metadata").click()
                details = page.frame_locator("iframe#user-metadata-current-details")
                await expect(details.locator("strong", has_text=f"Order {order['id']} · {name}")).to_be_visible()
                # A signal sent from the Web UI is encrypted by the codec server before it reaches Temporal.
                await page.goto(url, wait_until="load")
                await send_signal(page, "change_status", {"trigger": "accept", "by": "Lea"})
                await eventually(lambda: len(messages_to(smtp, order["customer"]["email"])) == 2, what="order_accepted")
                # The `state` query's answer, encrypted by the worker (a client without the codec cannot read it), is
                # decoded in the Queries tab.
                await eventually(lambda: _accepted(handle), what="the order accepted")
                with pytest.raises(KeyError, match="Unknown payload encoding binary/encrypted"):
                    await env.client.get_workflow_handle(handle.id).query("state")
                await page.goto(url.removesuffix("/history") + "/query", wait_until="load")
                await run_query(page, "state")
                await expect(page.locator("body")).to_contain_text('"status": "accepted"')
                await expect(page.locator("body")).to_contain_text(f'"{order["customer"]["email"]}"')  # emails_sent's recipient
            # Served with a token instead, which this Web UI does not send: it is refused, and shows the ciphertext.
            history = await handle.fetch_history()  # as stored: encrypted
            sealed = history.events[0].workflow_execution_started_event_attributes.input.payloads[0].data
            [signalled] = [e.workflow_execution_signaled_event_attributes for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
            assert signalled.input.payloads[0].metadata["encoding"] == b"binary/encrypted" and b"Lea" not in signalled.SerializeToString()
            guarded = web.model_copy(update={"web": web.web.model_copy(update={"codec_auth": "token", "codec_token": SecretStr("t" * 40)})})
            async with web_running(guarded, client):
                await page.goto(url, wait_until="load")
                await expect(page.locator("body")).to_contain_text(base64.b64encode(sealed).decode()[:60], timeout=30_000)
                await expect(page.locator("body")).not_to_contain_text(name)
    finally:
        await context.close()
