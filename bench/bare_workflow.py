"""The benchmark's bare Temporal workflow: one signal -> one activity sending a message (pre-built: the ceiling), and,
doing printroom's work the naive way, each email rendered in its activity and the order's status published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    import aiosmtplib


ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
STATUSES = ("accepted", "in_production", "completed")


@workflow.defn(name="BareEmailWorkflow")
class BareEmailWorkflow:
    def __init__(self) -> None:
        self._queue: list[str] = []
        self._done = 0

    @workflow.run
    async def run(self, emails: int, publish_status: bool = False) -> int:
        while self._done < emails:
            await workflow.wait_condition(lambda: bool(self._queue))
            message_id = self._queue.pop(0)
            if publish_status:  # the search attribute the spec asks of an order, at each of its status changes
                workflow.upsert_search_attributes([ORDER_STATUS.value_set(STATUSES[self._done % len(STATUSES)])])
            await workflow.execute_activity(
                "bare_send", message_id, start_to_close_timeout=timedelta(minutes=1)
            )
            self._done += 1
        return self._done

    @workflow.signal
    def send(self, message_id: str) -> None:
        self._queue.append(message_id)


class BareSender:
    """Sends the same pre-built message each time, with only its Message-ID changed."""

    def __init__(self, host: str, port: int, template: bytes) -> None:
        self.host, self.port, self.template = host, port, template

    async def message(self, message_id: str) -> bytes:
        return self.template.replace(b"<MESSAGE-ID>", message_id.encode())

    @activity.defn(name="bare_send")
    async def bare_send(self, message_id: str) -> None:
        data = await self.message(message_id)
        await aiosmtplib.send(
            data, sender="printroom@example.com", recipients=["marie@example.org"],
            hostname=self.host, port=self.port, start_tls=False,
        )  # fmt: skip


class RenderingBareSender(BareSender):
    """The same design doing printroom's work: each activity renders its email with printroom's own code
    (template, CSS inlining, text part, MIME: `render(message_id)`) before sending it on a connection of its own.
    No delivery record, no policy, no drafts: the naive way."""

    def __init__(self, host: str, port: int, render: Callable[[str], bytes]) -> None:
        super().__init__(host, port, b"")
        self.render = render

    async def message(self, message_id: str) -> bytes:
        return await asyncio.to_thread(self.render, message_id)  # off the event loop, as printroom renders


async def _serve(address: str, task_queue: str, max_cached_workflows: int, smtp_port: int) -> None:
    """A bare worker in a process of its own, so that its memory can be read from outside (bench/scale.py)."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    sender = BareSender("127.0.0.1", smtp_port, b"Message-ID: <MESSAGE-ID>\r\n\r\nbare\r\n")
    async with Worker(client, task_queue=task_queue, workflows=[BareEmailWorkflow], activities=[sender.bare_send],
                      max_cached_workflows=max_cached_workflows):  # fmt: skip
        await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    asyncio.run(_serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
