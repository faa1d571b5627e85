"""Builds and runs the printroom worker against any Temporal service; SIGTERM lets running activities finish."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from activities.deliveries import DeliveryLog
from activities.email import EmailActivities
from activities.smtp import SmtpTransport
from activities.template_check import check_templates
from printroom.settings import Settings, TemporalSettings
from workflows.order import SEARCH_ATTRIBUTES, OrderWorkflow

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
    options = connect_options(settings, use_environment=use_environment)
    return await Client.connect(**options, data_converter=pydantic_data_converter)


class StartupError(Exception):
    """The worker cannot run against this Temporal service; the message says what to do."""


async def ensure_search_attributes(client: Client) -> None:
    """Register OrderStatus if the namespace lacks it: without it every workflow task would fail for ever."""
    wanted = {key.name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}") for key in SEARCH_ATTRIBUTES}
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
        missing = {name: kind for name, kind in wanted.items() if name not in listed.custom_attributes}
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        missing = wanted  # the time-skipping test server cannot list, but can add
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as error:
        if error.status == RPCStatusCode.ALREADY_EXISTS:
            return
        names = ", ".join(f"{name} (Keyword)" for name in missing)
        raise StartupError(
            f"namespace {client.namespace!r} lacks the search attribute(s) {names} and this worker may not add them "
            f"({error.message}); register them once, e.g. `temporal operator search-attribute create "
            f"--namespace {client.namespace} --name OrderStatus --type Keyword`, then start the worker again"
        ) from None
    log.info("registered search attribute(s) %s in namespace %r", ", ".join(missing), client.namespace)


def build_worker(
    client: Client,
    settings: Settings,
    *,
    transport: SmtpTransport | None = None,
    task_queue: str | None = None,
    activities: EmailActivities | None = None,
) -> Worker:
    """The one place that wires workflows to activities; tests and `printroom dev` use it as production does."""
    activities = activities or EmailActivities.from_settings(settings, transport)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal.task_queue,
        workflows=[OrderWorkflow],
        activities=[activities.send_status_email, activities.send_status_emails],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C), so shutdown goes through the same graceful path."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_worker(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Run until `stop` is set; then let running activities finish and return."""
    activities = EmailActivities.from_settings(settings)
    # With the worker's own renderer: what is checked is what it keeps and sends.
    if problems := check_templates(settings, activities.assembler.renderer):
        listed = "\n  ".join(map(str, problems))
        raise StartupError(
            f"{len(problems)} problem(s) in the email templates; no email could be trusted to go out:\n  {listed}\n"
            "fix them (`printroom templates check` lists them again) and start the worker again"
        )
    client = client or await connect(settings.temporal)
    await ensure_search_attributes(client)
    if pruned := DeliveryLog(settings.deliveries_dir).prune():
        log.info("removed %d delivery records older than 30 days from %s", pruned, settings.deliveries_dir)
    worker = build_worker(client, settings, activities=activities)
    log.info(
        "worker polling task queue %r on %s, namespace %r",
        settings.temporal.task_queue,
        client.service_client.config.target_host,
        client.namespace,
    )
    async with worker:
        await stop.wait()
        log.info("stopping: letting running activities finish (up to %s)", GRACEFUL_SHUTDOWN)
