"""At a worker's start: the open workflows of printroom's on its task queue can be read with the keys it has. A key
dropped too early (or encryption turned off with the keys removed) is said at start, naming the key id and the
orders, instead of failing every workflow task of those orders.

Every event of a history is read, not only the first: an order started in clear (or under an older key) gets
signals, updates and activity results encrypted later under another key, and a worker replaying it decodes them
all; no event type can be skipped safely, so none is guessed at. The cost stays bounded: an order's history is a
few events per status change and email, the long-lived workflows (cost centre, bounce watch) continue as new past
a limit, histories are read 256 events a page and 16 at once, only the `most` oldest, and the whole check stops at
its time limit.

The oldest open orders are the ones checked (they are the likeliest to hold a key since dropped); the check is a
safety net, never a reason of its own not to start: a history that cannot be read is skipped, and past its time
limit the worker starts, each said at WARNING. Only a key really missing stops the worker."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from printroom.codec import ENCODING, KEY_ID, KeyRing
from printroom.worker.startup import StartupError

log = logging.getLogger("printroom.worker")

# The open workflows whose histories are read, oldest first.
MOST_CHECKED = 2000
AT_ONCE = 16
NAMED = 3
# The whole check, listing included: past it, the worker starts with what was checked so far.
TIME_LIMIT = 30.0
# One request (a page of the listing, a page of a history).
RPC_TIMEOUT = timedelta(seconds=10)
HISTORY_PAGE = 256  # events a page; Temporal's frontend warns past its default maximum, 256
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)

Listed = tuple[datetime, str, str | None]  # start time, workflow id, run id


async def check_keys(
    client: Client,
    keys: KeyRing | None,
    task_queue: str,
    workflow_types: tuple[str, ...],
    *,
    most: int = MOST_CHECKED,
    time_limit: float = TIME_LIMIT,
) -> None:
    """Raise StartupError naming each key id a payload in the history of one of the `most` oldest open workflows
    was encrypted with and `keys` lack. Everything else (a listing refused, a history not read, the time limit) is a warning."""
    found: dict[str, set[str]] = {}  # workflow id -> the key ids in its history (none: in clear), as read
    unread: dict[str, str] = {}  # workflow id -> why its history was not read
    listed: list[Listed] | None = None
    timed_out = False
    try:
        async with asyncio.timeout(time_limit):
            listed = await _open_workflows(client, task_queue, workflow_types)
            if listed is None:
                return
            await _read_keys(client, listed[:most], found, unread)
    except TimeoutError:
        timed_out = True
        total = "an unknown number of" if listed is None else f"{len(listed)}"
        log.warning(
            "the keys of open workflows on %r were checked for %.0f s, the time limit: %d of %s open workflows checked; "
            "the worker starts, and a key missing for the others shows when their tasks fail, naming it",
            task_queue, time_limit, len(found), total,
        )  # fmt: skip
    if listed is not None and not timed_out and len(listed) > most:
        log.warning(
            "the keys of the %d oldest of %d open workflows on %r were checked, not of the %d newest; a key missing "
            "for those shows when their tasks fail, naming it",
            most, len(listed), task_queue, len(listed) - most,
        )  # fmt: skip
    if unread:
        reasons = "; ".join(f"{workflow_id}: {why}" for workflow_id, why in list(unread.items())[:NAMED])
        more = f" and {len(unread) - NAMED} more" if len(unread) > NAMED else ""
        log.warning(
            "the histories of %d open workflows on %r could not be read, their keys not checked (%s%s); that alone "
            "does not stop the worker",
            len(unread), task_queue, reasons, more,
        )  # fmt: skip
    missing: dict[str, list[str]] = {}
    for _, workflow_id, _ in listed or []:  # oldest first, as named in the message
        for key_id in sorted(found.get(workflow_id, set())):
            if keys is None or key_id not in keys.keys:
                missing.setdefault(key_id, []).append(workflow_id)
    if not missing:
        return
    lacking = "; ".join(f"key {key_id!r}: {_some(ids)}" for key_id, ids in sorted(missing.items()))
    given = f"the keys given are {', '.join(keys.ids)}" if keys else "no encryption key is given"
    raise StartupError(
        f"open workflows on task queue {task_queue!r} were encrypted with keys this worker lacks ({lacking}); {given}. "
        "Add those keys to temporal.encryption_key_file (with `encrypt = false` to write in clear from now on) and "
        "start the worker again; if a key is lost, its workflows cannot go on: terminate them first"
    )


async def _open_workflows(client: Client, task_queue: str, workflow_types: tuple[str, ...]) -> list[Listed] | None:
    """Every open workflow of these types on the queue, oldest first (visibility lists the newest first, and not
    every store sorts otherwise: all pages are read, only ids and times). None: this service lists nothing."""
    types = " OR ".join(f'WorkflowType = "{name}"' for name in workflow_types)
    query = f'ExecutionStatus = "Running" AND TaskQueue = "{task_queue}" AND ({types})'
    try:
        listed = [(w.start_time or _EPOCH, w.id, w.run_id) async for w in client.list_workflows(query, rpc_timeout=RPC_TIMEOUT)]
    except RPCError as error:  # the time-skipping test server lists nothing; a namespace may not let this worker list
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            log.warning("the keys of open workflows were not checked (%s): a missing key shows when its task fails", error.message)
        return None
    return sorted(listed, key=lambda entry: entry[0])


async def _read_keys(client: Client, listed: list[Listed], found: dict[str, set[str]], unread: dict[str, str]) -> None:
    """The key ids of each workflow's history into `found` as it is read (kept if the time limit cuts this short); a
    history that cannot be read (deleted since the listing, refused, too slow) into `unread` with the reason."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def read(workflow_id: str, run_id: str | None) -> None:
        async with gate:
            try:
                await _key_of(client, workflow_id, run_id, found)
            except RPCError as error:  # deleted since the listing, PERMISSION_DENIED, DEADLINE_EXCEEDED
                unread[workflow_id] = f"{error.status.name if error.status else 'error'}: {error.message}"
            except Exception as error:  # noqa: BLE001  # a safety net must not be the reason a worker does not start
                unread[workflow_id] = f"{type(error).__name__}: {error}"

    await asyncio.gather(*(read(workflow_id, run_id) for _, workflow_id, run_id in listed))


async def _key_of(client: Client, workflow_id: str, run_id: str | None, found: dict[str, set[str]]) -> None:
    """The ids of the keys any payload of the workflow's history was encrypted with, into `found[workflow_id]` (none:
    all in clear), kept as soon as one is seen: a history the time limit cuts short still counts. A failed workflow
    task's details are not read: they are the worker's own report, never decoded on replay. An event whose bytes
    hold no encrypted payload's encoding is not walked."""
    keys: set[str] = set()
    events = client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events(page_size=HISTORY_PAGE, rpc_timeout=RPC_TIMEOUT)
    async for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED or ENCODING not in event.SerializeToString():
            continue
        _collect_key_ids(event, keys)
        if keys:
            found[workflow_id] = keys
    found[workflow_id] = keys


def _collect_key_ids(message: Message, found: set[str]) -> None:
    """Every payload in the message, however deep (inputs, results, memos, headers, failures' details), not a list
    of event types that a new Temporal event or field would outgrow."""
    if isinstance(message, Payload):
        if message.metadata.get("encoding") == ENCODING:
            found.add(message.metadata.get(KEY_ID, b"").decode("ascii", "replace"))
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            _collect_key_ids(value, found)
        elif field.message_type.GetOptions().map_entry:  # a memo's or a header's fields: payloads by name
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _collect_key_ids(item, found)
        else:  # repeated
            for item in value:
                _collect_key_ids(item, found)


def _some(workflow_ids: list[str]) -> str:
    named = ", ".join(workflow_ids[:NAMED])
    return named + (f" and {len(workflow_ids) - NAMED} more" if len(workflow_ids) > NAMED else "")
