"""PrintroomPlugin: printroom's workflows and email activities in any Temporal worker, ours or an application's."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio import workflow
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker, WorkerConfig

from printroom.activities.email import EmailActivities
from printroom.activities.smtp import SmtpTransport
from printroom.settings import Settings, SettingsSource, resolve_settings
from printroom.worker.startup import check_templates_or_refuse, prepare_namespace
from printroom.workflows.order import OrderWorkflow

log = logging.getLogger("printroom.worker")

WORKFLOWS: tuple[type, ...] = (OrderWorkflow,)


def with_pydantic(existing: DataConverter | None) -> DataConverter:
    """printroom's payloads are pydantic models. An application's own codec (encryption, compression) and failure
    converter stay; only the payload converter becomes pydantic's, which still handles plain JSON values."""
    existing = existing or DataConverter.default
    if issubclass(existing.payload_converter_class, PydanticPayloadConverter):
        return existing
    return dataclasses.replace(existing, payload_converter_class=PydanticPayloadConverter)


class _QuietOnReplay(logging.Filter):
    """The `transitions` library logs each state it enters at INFO; a replayed workflow would say it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (workflow.in_workflow() and workflow.unsafe.is_replaying())


_quiet_on_replay = _QuietOnReplay()


class PrintroomPlugin(SimplePlugin):
    """Adds printroom to a worker: the pydantic data converter, `OrderWorkflow`, the email activities with their
    dependencies (templates, document store, SMTP transport, delivery records), and the start-up checks (every
    template renders, the namespace has printroom's search attributes) when the worker starts.

    `settings` is a `Settings`, a mapping shaped like printroom.toml, the path of such a file, or None for what
    `printroom worker` reads (printroom.toml or $PRINTROOM_SETTINGS, PRINTROOM_* variables, defaults). They are
    validated when the worker is built: invalid settings raise `SettingsError` naming every bad field.

    Given to `Client.connect(plugins=[...])` it applies to the client (data converter) and to every worker built
    on it; given to one `Worker(plugins=[...])`, that client must already use the pydantic payload converter."""

    def __init__(
        self,
        settings: SettingsSource = None,
        *,
        transport: SmtpTransport | None = None,
        emails: EmailActivities | None = None,
        check_on_start: bool = True,
    ) -> None:
        self._given, self._transport, self._emails, self._check_on_start = settings, transport, emails, check_on_start
        self._templates_checked = False
        super().__init__(
            "printroom",
            data_converter=with_pydantic,
            workflows=list(WORKFLOWS),
            activities=self._add_activities,
        )

    @property
    def settings(self) -> Settings:
        return self.emails.settings

    @property
    def emails(self) -> EmailActivities:
        """The activity object, built once from the settings (which are validated here, on first use)."""
        if self._emails is None:
            self._emails = EmailActivities.from_settings(resolve_settings(self._given), self._transport)
        return self._emails

    def _add_activities(self, existing: Sequence[Callable[..., Any]] | None) -> list[Callable[..., Any]]:
        return [*(existing or []), *self.emails.activities()]

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        client = config.get("client")
        if client is not None and not issubclass(client.data_converter.payload_converter_class, PydanticPayloadConverter):
            raise ValueError(
                "printroom's workflows exchange pydantic models, but this worker's client has another payload "
                "converter: pass PrintroomPlugin to Client.connect(..., plugins=[...]) instead of to the Worker, "
                "or connect with data_converter=temporalio.contrib.pydantic.pydantic_data_converter"
            )
        task_queue, expected = config.get("task_queue"), self.settings.temporal.task_queue
        if task_queue != expected:
            log.warning(
                "printroom's OrderWorkflow runs on task queue %r on this worker, while the settings say %r "
                "(temporal.task_queue): start orders with --task-queue %s, or set temporal.task_queue = %r "
                "so that printroom's own tools and banners name the queue this worker polls",
                task_queue, expected, task_queue, task_queue,
            )  # fmt: skip
        logging.getLogger("transitions.core").addFilter(_quiet_on_replay)  # once: the same filter is not added twice
        return config

    async def check_templates(self) -> None:
        """Raise StartupError if any email cannot be built; once per plugin (its renderer keeps what it read)."""
        if not self._templates_checked:
            await check_templates_or_refuse(self.emails)
            self._templates_checked = True

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        if self._check_on_start:
            await self.check_templates()
        await prepare_namespace(worker.client, self.emails)
        await super().run_worker(worker, next)
