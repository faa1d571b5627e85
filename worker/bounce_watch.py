"""Starting the bounce watcher with the worker: one per namespace (`printroom-bounces`), whichever worker starts
first; a running one is left as it is."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from printroom.models import BOUNCE_WATCH_ID, BOUNCE_WATCH_WORKFLOW, BounceWatch
from printroom.settings import Settings

log = logging.getLogger("printroom.worker")


async def start_bounce_watch(client: Client, settings: Settings, task_queue: str) -> None:
    """Starts `printroom-bounces` when `[bounces]` is set (running already: nothing to do)."""
    bounces = settings.bounces
    if bounces is None:
        return
    watch = BounceWatch(poll_every=bounces.poll_every, polls_per_run=bounces.polls_per_run)
    try:
        await client.start_workflow(
            BOUNCE_WATCH_WORKFLOW, watch, id=BOUNCE_WATCH_ID, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Bounces of the print room's emails, read from {bounces.username} at {bounces.host}",
        )  # fmt: skip
    except WorkflowAlreadyStartedError:  # a server without id_conflict_policy: running, as wanted
        pass
    log.info("bounce watcher %s running on %s: %s every %s", BOUNCE_WATCH_ID, task_queue, bounces.folder, bounces.poll_every)
