"""Records the histories that tests/test_replay.py replays, as VERSION-<workflow id>.json. Histories of earlier
versions stay: running orders must keep replaying. A change that alters the commands a workflow issues goes
behind workflow.patched, and gets a new VERSION here.

    .venv/bin/python -m tests.histories.record
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import SmtpCapture
from printroom.settings import Settings
from tests.conftest import eventually, free_port, sample_order
from printroom.worker.main import build_worker
from printroom.workflows.order import SEARCH_ATTRIBUTES, OrderWorkflow

HERE = Path(__file__).parent
VERSION = "v2"  # v2: the first attempt for all queued emails in one local activity (BATCHED_FIRST_ATTEMPT)


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )  # fmt: skip
    port = free_port()
    settings = Settings(operators=["ops@example.com"], smtp={"port": port, "timeout_seconds": 2})
    client = env.client
    async with build_worker(client, settings, task_queue="record"):
        with SmtpCapture(port=port):
            shipped = await client.start_workflow(OrderWorkflow.run, sample_order("H-SHIPPED"), id="order-H-SHIPPED", task_queue="record")
            await shipped.signal("change_status", {"trigger": "ship"})  # refused: not allowed yet
            for trigger in ("accept", "start_production", "complete", "ship"):
                await shipped.signal("change_status", {"trigger": trigger, "by": "Léa"})
            await shipped.result()
        # The SMTP server is down at first: the local attempt fails, a regular activity retries until it is back.
        outage = await client.start_workflow(OrderWorkflow.run, sample_order("H-OUTAGE"), id="order-H-OUTAGE", task_queue="record")
        await asyncio.sleep(4)
        with SmtpCapture(port=port) as back:
            await eventually(lambda: len(back.messages) >= 2, timeout=30)
            await outage.signal("change_status", {"trigger": "cancel"})
            await outage.result()
    for handle in (shipped, outage):
        history = await handle.fetch_history()
        (HERE / f"{VERSION}-{handle.id}.json").write_text(history.to_json())
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)
