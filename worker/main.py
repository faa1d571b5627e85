"""`printroom worker`: connects to any Temporal service and runs printroom's plugin on its own task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from printroom.activities.email import EmailActivities
from printroom.activities.smtp import SmtpTransport
from printroom.codec import encrypting
from printroom.settings import Settings, TemporalSettings
from printroom.worker.plugin import PrintroomPlugin, with_pydantic
from printroom.worker.reach import unreachable

log = logging.getLogger("printroom.worker")

DEFAULT_ADDRESS = "127.0.0.1:7233"
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


def connect_options(settings: TemporalSettings, *, use_environment: bool = True) -> dict[str, Any]:
    """printroom's settings win, then the standard TEMPORAL_* variables (and profile file), then localhost."""
    options: dict[str, Any] = dict(ClientConfig.load_client_connect_config()) if use_environment else {}
    options.setdefault("target_host", DEFAULT_ADDRESS)
    if settings.address:
        options["target_host"] = settings.address
    if settings.namespace:
        options["namespace"] = settings.namespace
    if settings.api_key is not None:
        options["api_key"] = settings.api_key.get_secret_value()
    if settings.tls is not None:
        options["tls"] = settings.tls
    return options


async def connect(settings: TemporalSettings, *, use_environment: bool = True) -> Client:
    """A client for printroom's tools (CLI, dev supervisor, `printroom web`): the pydantic payload converter, and
    the encryption codec when keys are set."""
    options = connect_options(settings, use_environment=use_environment)
    try:
        return await Client.connect(**options, data_converter=encrypting(with_pydantic(None), settings.codec()))
    except RuntimeError as error:  # the core's text; said in words, naming the address (TemporalUnreachable)
        raise unreachable(options["target_host"], error) from None


def build_worker(
    client: Client,
    settings: Settings,
    *,
    transport: SmtpTransport | None = None,
    task_queue: str | None = None,
    emails: EmailActivities | None = None,
    check_templates: bool = True,
) -> Worker:
    """printroom's own worker on the settings' task queue; tests and `printroom dev` use it too."""
    plugin = PrintroomPlugin(settings, transport=transport, emails=emails, check_templates=check_templates)
    return worker_for(client, plugin, task_queue)


def worker_for(client: Client, plugin: PrintroomPlugin, task_queue: str | None = None) -> Worker:
    """As many emails at once as SMTP connections: more would only wait for one, their timeouts running.
    As many orders held in memory as `worker.max_cached_workflows`."""
    connections = plugin.settings.smtp.max_connections
    return Worker(
        client,
        task_queue=task_queue or plugin.settings.temporal.task_queue,
        plugins=[plugin],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_cached_workflows=plugin.settings.worker.max_cached_workflows,
        max_concurrent_activities=connections,
        max_concurrent_local_activities=connections,
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C), so shutdown goes through the same graceful path."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_worker(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Run until `stop` is set; then let running activities finish and return. A failed start-up check
    (templates, search attributes) raises StartupError before anything is polled."""
    plugin = PrintroomPlugin(settings)
    plugin.check_templates()  # before connecting: a broken template is the administrator's to fix first
    client = client or await connect(settings.temporal)
    worker = worker_for(client, plugin)
    log.info(
        "worker starting on task queue %r at %s, namespace %r",
        settings.temporal.task_queue,
        client.service_client.config.target_host,
        client.namespace,
    )
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():  # a start-up check failed, or the worker died: say why
        stopping.cancel()
        running.result()
        return
    log.info("stopping: letting running activities finish (up to %s)", GRACEFUL_SHUTDOWN)
    await worker.shutdown()
    await running
