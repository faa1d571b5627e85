"""At a worker's start: the open workflows of printroom's on its task queue can be read with the keys it has. A key
dropped too early (or encryption turned off with the keys removed) is said at start, naming the key id and the
orders, instead of failing every workflow task of those orders."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from printroom.codec import ENCODING, KEY_ID, KeyRing
from printroom.worker.startup import StartupError

log = logging.getLogger("printroom.worker")

# The open workflows looked at (each one small request for its first event): a start-up of a few seconds at most.
MOST_CHECKED = 2000
AT_ONCE = 16
NAMED = 3


async def check_keys(client: Client, keys: KeyRing | None, task_queue: str, workflow_types: tuple[str, ...]) -> None:
    """Raise StartupError naming each key id an open workflow's input was encrypted with and `keys` lack."""
    types = " OR ".join(f'WorkflowType = "{name}"' for name in workflow_types)
    query = f'ExecutionStatus = "Running" AND TaskQueue = "{task_queue}" AND ({types})'
    try:
        running = [(w.id, w.run_id) async for w in client.list_workflows(query, limit=MOST_CHECKED)]
    except RPCError as error:  # the time-skipping test server lists nothing; a namespace may not let this worker list
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            log.warning("the keys of open workflows were not checked (%s): a missing key shows when its task fails", error.message)
        return
    gate = asyncio.Semaphore(AT_ONCE)

    async def key_of(workflow_id: str, run_id: str | None) -> str | None:
        async with gate:
            async for event in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events(page_size=1):
                for payload in event.workflow_execution_started_event_attributes.input.payloads:
                    if payload.metadata.get("encoding") == ENCODING:
                        return payload.metadata.get(KEY_ID, b"").decode("ascii", "replace")
                return None
        return None

    found = await asyncio.gather(*(key_of(w, r) for w, r in running))
    missing: dict[str, list[str]] = {}
    for (workflow_id, _), key_id in zip(running, found):
        if key_id is not None and (keys is None or key_id not in keys.keys):
            missing.setdefault(key_id, []).append(workflow_id)
    if len(running) == MOST_CHECKED:
        log.info("the keys of the first %d open workflows on %r were checked, not of the others", MOST_CHECKED, task_queue)
    if not missing:
        return
    lacking = "; ".join(f"key {key_id!r}: {_some(ids)}" for key_id, ids in sorted(missing.items()))
    given = f"the keys given are {', '.join(keys.ids)}" if keys else "no encryption key is given"
    raise StartupError(
        f"open workflows on task queue {task_queue!r} were encrypted with keys this worker lacks ({lacking}); {given}. "
        "Add those keys to temporal.encryption_key_file (with `encrypt = false` to write in clear from now on) and "
        "start the worker again; if a key is lost, its workflows cannot go on: terminate them first"
    )


def _some(workflow_ids: list[str]) -> str:
    named = ", ".join(workflow_ids[:NAMED])
    return named + (f" and {len(workflow_ids) - NAMED} more" if len(workflow_ids) > NAMED else "")
