"""PrintroomPlugin: printroom's workflows and email activities in any Temporal worker, ours or an application's."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio import workflow
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultPayloadConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import ReplayerConfig, Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from printroom.activities.email import EmailActivities
from printroom.activities.smtp import SmtpTransport
from printroom.codec import encrypting, encrypts
from printroom.settings import Settings, SettingsSource, resolve_settings
from printroom.statemachines.table import MACHINE_NAME_PREFIX
from printroom.worker.key_check import check_keys
from printroom.worker.order_start import OrderStartMemo
from printroom.worker.startup import check_templates_or_refuse, prepare_namespace, wait_for_the_record
from printroom.worker.bounce_watch import start_bounce_watch
from printroom.workflows.bounce_watch import BounceWatchWorkflow
from printroom.workflows.budget import BudgetApprovalWorkflow
from printroom.workflows.cost_centre import CostCentreWorkflow
from printroom.workflows.order import OrderWorkflow

log = logging.getLogger("printroom.worker")

WORKFLOWS: tuple[type, ...] = (OrderWorkflow, BudgetApprovalWorkflow, CostCentreWorkflow, BounceWatchWorkflow)
WORKFLOW_TYPES = ("OrderWorkflow", "BudgetApprovalWorkflow", "CostCentreWorkflow", "BounceWatchWorkflow")  # their names (public interface)


def with_pydantic(existing: DataConverter | None) -> DataConverter:
    """printroom's payloads are pydantic models. The SDK's default payload converter becomes pydantic's (which
    reads and writes the same JSON, and pydantic models besides); an application's codec (encryption,
    compression) and failure converter stay. A payload converter of the application's own is not replaced."""
    existing = existing or DataConverter.default
    converter = existing.payload_converter_class
    if issubclass(converter, PydanticPayloadConverter):
        return existing
    if converter is not DefaultPayloadConverter:
        raise ValueError(
            f"this client's payload converter is {converter.__module__}.{converter.__qualname__}; printroom needs "
            "pydantic's: derive yours from temporalio.contrib.pydantic.PydanticPayloadConverter"
        )
    return dataclasses.replace(existing, payload_converter_class=PydanticPayloadConverter)


class _QuietOnReplay(logging.Filter):
    """printroom's Machines log each state they enter at INFO (`transitions` does); a replayed workflow would say
    it all again. Only their INFO and DEBUG lines, only while replaying: an application's own Machines and every
    warning pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = isinstance(record.args, tuple) and bool(record.args) and str(record.args[0]).startswith(MACHINE_NAME_PREFIX)
        return not (ours and record.levelno <= logging.INFO and workflow.in_workflow() and workflow.unsafe.is_replaying())


_quiet_on_replay = _QuietOnReplay()


def _quiet_machines_on_replay() -> None:
    logging.getLogger("transitions.core").addFilter(_quiet_on_replay)  # the same filter is never added twice


def _never_started(worker: Worker) -> None:
    """temporalio 1.35 marks a worker shut down only from inside Worker._run: when a plugin refuses to start
    it, `async with Worker(...)` and `shutdown()` would wait for ever. Say it never started."""
    if not getattr(worker, "_started", True):
        worker._shutdown_complete_event.set()  # noqa: SLF001  # no public way; see the docstring


async def _unless_stopped(worker: Worker, waiting: Awaitable[None]) -> bool:
    """Wait, unless the worker is asked to shut down first (temporalio 1.35 has no public event for it): False then."""
    wait, stop = asyncio.ensure_future(waiting), asyncio.ensure_future(worker._shutdown_event.wait())  # noqa: SLF001
    done, _ = await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (wait, stop):
        task.cancel()
    if wait in done:
        wait.result()
        return True
    return False


class PrintroomPlugin(SimplePlugin):
    """Adds printroom to a worker: the pydantic payload converter, `OrderWorkflow`, the email activities with
    their dependencies (templates, document store, SMTP transport, delivery records), and the start-up checks.

    `settings` is a `Settings`, a mapping shaped like printroom.toml, the path of such a file, or None for what
    `printroom worker` reads (printroom.toml or $PRINTROOM_SETTINGS, PRINTROOM_* variables, defaults). When the
    worker is built they are validated (`SettingsError` names every bad field) and every template is rendered
    (`StartupError` lists what is broken); when it starts, the namespace gets printroom's search attributes.

    Given to `Client.connect(plugins=[...])` it applies to the client (payload converter) and to every worker
    built on it; given to one `Worker(plugins=[...])`, that client must already use the pydantic converter."""

    def __init__(
        self,
        settings: SettingsSource = None,
        *,
        transport: SmtpTransport | None = None,
        emails: EmailActivities | None = None,
        check_templates: bool = True,
    ) -> None:
        self._given, self._transport, self._emails = settings, transport, emails
        self._settings: Settings | None = None
        self._templates_to_check = check_templates
        super().__init__(
            "printroom",
            data_converter=self._converter,
            workflows=list(WORKFLOWS),
            activities=self._add_activities,
            interceptors=[OrderStartMemo(lambda: self.settings)],  # on the client: orders it starts
        )

    @property
    def settings(self) -> Settings:
        """Validated on first use (SettingsError names every bad field): when the client connects or the worker is
        built."""
        if self._emails is not None:
            return self._emails.settings
        if self._settings is None:
            self._settings = resolve_settings(self._given)
        return self._settings

    @property
    def emails(self) -> EmailActivities:
        """The activity object, built once from the settings (which are validated here, on first use)."""
        if self._emails is None:
            self._emails = EmailActivities.from_settings(self.settings, self._transport)
        return self._emails

    def check_templates(self) -> None:
        """Raise StartupError if any email cannot be built; once (the renderer keeps what it has read)."""
        if self._templates_to_check:
            check_templates_or_refuse(self.emails)
            self._templates_to_check = False

    def _converter(self, existing: DataConverter | None) -> DataConverter:
        """pydantic's payload converter, and the encryption codec when `temporal.encryption_key*` is set: the client
        encrypts what it sends (orders, signals, updates), and its workers what they write (results, queries,
        current details)."""
        return encrypting(with_pydantic(existing), self.settings.temporal.codec())

    def _add_activities(self, existing: Sequence[Callable[..., Any]] | None) -> list[Callable[..., Any]]:
        return [*(existing or []), *self.emails.activities()]

    def _our_modules_passed_through(self, existing: WorkflowRunner | None) -> WorkflowRunner:
        """Temporal's sandbox imports a workflow's module afresh for every workflow it runs: about 70 KB of code
        and classes for each order a worker holds. printroom's modules keep no state and call only
        `temporalio.workflow` and printroom's deterministic helpers, so a worker imports them once and passes them
        through, unless `worker.strict_sandbox`. EmailStr's validator imports email_validator and idna lazily, inside the
        sandbox: passed through too. A Replayer keeps the full sandbox: replaying is where checks belong."""
        runner = existing or SandboxedWorkflowRunner()
        if not isinstance(runner, SandboxedWorkflowRunner):
            return runner  # the application's choice (e.g. UnsandboxedWorkflowRunner)
        modules = ("email_validator", "idna") if self.settings.worker.strict_sandbox else ("printroom", "email_validator", "idna")
        return dataclasses.replace(runner, restrictions=runner.restrictions.with_passthrough_modules(*modules))

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        config["workflow_runner"] = self._our_modules_passed_through(config.get("workflow_runner"))
        client = config.get("client")
        if client is not None and not issubclass(client.data_converter.payload_converter_class, PydanticPayloadConverter):
            raise ValueError(
                "printroom's workflows exchange pydantic models, but this worker's client has another payload "
                "converter: pass PrintroomPlugin to Client.connect(..., plugins=[...]) instead of to the Worker, "
                "or connect with data_converter=temporalio.contrib.pydantic.pydantic_data_converter"
            )
        keys = self.settings.temporal.key_ring()
        if client is not None and keys is not None and not encrypts(client.data_converter):
            raise ValueError(
                "temporal.encryption_key is set, but this worker's client does not encrypt: pass PrintroomPlugin to "
                "Client.connect(..., plugins=[...]) so that the client and its workers encrypt with printroom's keys"
            )
        if keys is not None:  # which ids this worker reads: a payload under any other fails its task, naming its id
            writes = f"{keys.encrypting} encrypts" if self.settings.temporal.encrypt else "encryption off, decrypting only"
            log.info("payload encryption: keys %s (%s)", ", ".join(keys.ids), writes)
        self.check_templates()
        task_queue, expected = config.get("task_queue"), self.settings.temporal.task_queue
        if task_queue != expected:
            log.warning(
                "printroom's OrderWorkflow runs on task queue %r on this worker, while the settings say %r "
                "(temporal.task_queue): start orders with --task-queue %s, or set temporal.task_queue = %r "
                "so that printroom's own tools and banners name the queue this worker polls",
                task_queue, expected, task_queue, task_queue,
            )  # fmt: skip
        _quiet_machines_on_replay()
        return config

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        _quiet_machines_on_replay()
        return super().configure_replayer(config)

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        try:
            if not await _unless_stopped(worker, wait_for_the_record(self.emails.deliveries)):
                _never_started(worker)  # asked to stop (Ctrl-C) while waiting for the record: nothing ran
                return
            await prepare_namespace(worker.client, self.emails)
            await check_keys(worker.client, self.settings.temporal.key_ring(), worker.task_queue, WORKFLOW_TYPES)
            await start_bounce_watch(worker.client, self.settings, worker.task_queue)
        except BaseException:
            _never_started(worker)
            raise
        try:
            await super().run_worker(worker, next)
        finally:  # the worker owns the SMTP sessions' life: QUIT said to the server, not a dropped connection
            await self.emails.transport.close()
