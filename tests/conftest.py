"""Real components for every tier: an aiosmtpd server per test, a Temporal dev server and a time-skipping server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import CapturedMessage, SmtpCapture
from printroom.models import OrderState
from printroom.settings import Settings
from printroom.worker.main import build_worker
from printroom.worker.startup import ensure_search_attributes
from printroom.workflows.order import SEARCH_ATTRIBUTES

# --- exit: temporalio can crash the interpreter at exit (sdk-python issue 300); pytest's verdict must stand.

_exit_status: int | None = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _exit_status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)


# --- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_order(order_id: str | None = None, **changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": order_id or f"PO-{uuid.uuid4().hex[:8]}",
        "shop": "default",
        "language": "fr",
        "customer": {"name": "Marie Curie", "email": "marie@example.org", "wants_status_emails": True},
        "price": {"amount": "240.00", "currency": "EUR"},
        "jobs": [{"id": "J1", "name": "Flyers A5", "product": "Flyer", "quantity": 500}],
    }
    order.update(changes)
    return order


async def eventually(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


async def event_names(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The workflow's history as its event types, e.g. "WORKFLOW_TASK_COMPLETED", "MARKER_RECORDED"."""
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") async for e in handle.fetch_history_events()]


async def task_settled(handle: WorkflowHandle[Any, Any], event: str = "WORKFLOW_TASK_COMPLETED", count: int = 1) -> bool:
    """`count` such events in history and no workflow task pending: the last task's commands are all written."""
    described = (await handle.describe()).raw_description
    return (await event_names(handle)).count(event) >= count and not described.HasField("pending_workflow_task")


async def order_state(handle: WorkflowHandle[Any, Any]) -> OrderState:
    return await handle.query("state", result_type=OrderState)


PRINTROOM_COMMAND = [sys.executable, "-c", "from printroom.cli.main import main; main()"]


def run_printroom(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The `printroom` command as a user runs it, in a clean environment (PRINTROOM_* given as keywords)."""
    return subprocess.run(
        [*PRINTROOM_COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip


async def printroom_beside_a_worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`run_printroom` for a command that needs this process's worker to answer: the event loop keeps running."""
    process = await asyncio.create_subprocess_exec(
        *PRINTROOM_COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", **env}
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return subprocess.CompletedProcess(list(args), process.returncode or 0, out.decode(), err.decode())


async def history_bytes(handle: WorkflowHandle[Any, Any]) -> bytes:
    """A workflow's history as the server keeps it: payloads as their own bytes (`to_json()` would show base64)."""
    return b"".join([event.SerializeToString() async for event in handle.fetch_history_events()])


def decoded_text(messages: list[CapturedMessage]) -> str:
    """Every header and part of the messages as a reader sees them: quoted-printable and base64 undone."""
    texts = []
    for message in messages:
        parsed = message.parsed()
        texts += [f"{name}: {value}" for name, value in parsed.items()]
        for part in parsed.walk():
            if not part.is_multipart() and part.get_content_maintype() == "text":
                texts.append(part.get_content())
    return "\n".join(texts)


def messages_to(smtp: SmtpCapture, address: str) -> list[CapturedMessage]:
    return [m for m in smtp.messages if address in m.rcpt_tos]


def with_smtp_port(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": port})})


class Refusing:
    """An SMTP handler that answers chosen recipients with a reply of ours (5xx, 4xx); tests change it live."""

    def __init__(self) -> None:
        self.replies: dict[str, str] = {}
        self.delivered: list[list[str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.append(list(envelope.rcpt_tos))
        return "250 OK"


# --- fixtures


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with SmtpCapture(port=free_port()) as capture:
        yield capture


@pytest.fixture
def settings(smtp: SmtpCapture, tmp_path: Path) -> Settings:
    return Settings(
        deliveries_dir=tmp_path / "deliveries",
        sender={"address": "printroom@example.com", "name": "Salle d'impression"},
        operators=["ops@example.com"],
        smtp={"host": "127.0.0.1", "port": smtp.port, "timeout_seconds": 5},
        shops={"default": {"order_url": "https://shop.example.com/orders/{order_id}"}},
        templates={"override_dir": tmp_path / "custom-templates"},
        # The workflow modules (order, budget, cost_centre) are re-imported into the sandbox for every workflow,
        # which fails a call from them that is not deterministic; a print room's worker imports them once.
        worker={"strict_sandbox": True},
    )


@pytest.fixture
def refusing_smtp(settings: Settings) -> Iterator[tuple[Refusing, Settings]]:
    """A real SMTP server that refuses what the test says, and settings pointing at it."""
    handler = Refusing()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, with_smtp_port(settings, controller.port)
    controller.stop()


UI_PORT = free_port()
# The SDK waits 5 s by default; a busy 2-core CI machine has been seen to need more.
SERVER_STARTUP = timedelta(seconds=30)


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The dev server of `make run`, with its Web UI (on UI_PORT) for the browser tests."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=UI_PORT,
        dev_server_extra_args=["--ui-disable-news-fetch"],
        dev_server_startup_timeout=SERVER_STARTUP,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        test_server_startup_timeout=SERVER_STARTUP,
    )
    await ensure_search_attributes(env.client)  # as `printroom worker` does at start
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"printroom-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def dev_worker(dev_env: WorkflowEnvironment, settings: Settings, task_queue: str) -> AsyncIterator[Worker]:
    async with build_worker(dev_env.client, settings, task_queue=task_queue) as worker:
        yield worker


@pytest.fixture
def client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client
