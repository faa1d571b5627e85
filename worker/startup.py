"""What a worker checks before it polls: every email template renders, the namespace knows printroom's search
attributes, and old delivery records are pruned. Any failure stops the worker with what to do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from printroom.activities.deliveries import DeliveryRecord, RecordUnavailable
from printroom.activities.email import EmailActivities
from printroom.worker.template_check import check_templates
from printroom.workflows.order import SEARCH_ATTRIBUTES

log = logging.getLogger("printroom.worker")


class StartupError(Exception):
    """The worker cannot run against this Temporal service or with these templates; the message says what to do."""


async def ensure_search_attributes(client: Client) -> None:
    """Register printroom's search attributes if the namespace lacks them: without them (or with one of another
    type) every workflow task of an order would fail."""
    wanted = {key.name: key.indexed_value_type for key in SEARCH_ATTRIBUTES}
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
        present = dict(listed.custom_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = {}  # the time-skipping test server cannot list, but can add
    if wrong := {n: present[n] for n, kind in wanted.items() if n in present and present[n] != _indexed(kind)}:
        described = ", ".join(f"{n} is {IndexedValueType.Name(v).removeprefix('INDEXED_VALUE_TYPE_').title()}, "
                              f"printroom needs {wanted[n].name.title()}" for n, v in wrong.items())  # fmt: skip
        raise StartupError(
            f"namespace {client.namespace!r} has printroom's search attribute(s) with another type ({described}); "
            "use a namespace of printroom's own, or remove them (`temporal operator search-attribute remove`)"
        )
    missing = {name: kind for name, kind in wanted.items() if name not in present}
    if not missing:
        return
    request = AddSearchAttributesRequest(
        namespace=client.namespace, search_attributes={name: _indexed(kind) for name, kind in missing.items()}
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as error:
        if error.status == RPCStatusCode.ALREADY_EXISTS:
            return
        names = ", ".join(f"{name} ({kind.name.title()})" for name, kind in missing.items())
        commands = "; ".join(
            f"`temporal operator search-attribute create --namespace {client.namespace} --name {name} --type {kind.name.title()}`"
            for name, kind in missing.items()
        )
        raise StartupError(
            f"namespace {client.namespace!r} lacks the search attribute(s) {names} and this worker may not add them "
            f"({error.message}); register them once: {commands}; then start the worker again"
        ) from None
    log.info("registered search attribute(s) %s in namespace %r", ", ".join(missing), client.namespace)


def _indexed(kind: SearchAttributeIndexedValueType) -> int:
    return IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.name}")


def check_templates_or_refuse(emails: EmailActivities) -> None:
    """Every email of every active language renders, with the renderer that will send it: what is checked is
    what it keeps and sends (a fraction of a second, once per worker)."""
    if problems := check_templates(emails.settings, emails.assembler.renderer):
        raise templates_refused(problems)


def templates_refused(problems: Sequence[object]) -> StartupError:
    """What the worker (and `printroom settings check`) says of broken templates: one line for each."""
    listed = "\n  ".join(map(str, problems))
    return StartupError(
        f"{len(problems)} problem(s) in the email templates; no email could be trusted to go out:\n  {listed}\n"
        "fix them (`printroom templates check` lists them again) and start the worker again"
    )


async def prepare_namespace(client: Client, emails: EmailActivities) -> None:
    """The search attributes printroom's workflows set; then prune delivery records no retry will ask for."""
    await ensure_search_attributes(client)
    try:
        pruned = await asyncio.to_thread(emails.deliveries.prune)
    except RecordUnavailable as error:  # gone again right after answering: pruning waits for the next start
        log.warning("old delivery records not pruned: %s", error)
        return
    if pruned:
        log.info("removed %d delivery records older than 30 days from %r", pruned, emails.deliveries)


# How often a worker whose delivery record cannot be reached tries again, saying so each time.
RECORD_WAIT = 5.0


async def wait_for_the_record(deliveries: DeliveryRecord) -> None:
    """Nothing is sent without the delivery record: a worker started while its database is down says so and
    waits (it does not poll Temporal, so no email is taken) until it can be reached."""
    while True:
        try:
            await asyncio.to_thread(deliveries.check)
            return
        except RecordUnavailable as error:
            log.warning("%s; waiting (nothing is sent until it answers), next try in %.0f s", error, RECORD_WAIT)
            await asyncio.sleep(RECORD_WAIT)
