"""Histories recorded from earlier runs must replay against today's code: running orders survive an upgrade."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from printroom.settings import Settings
from printroom.worker.plugin import WORKFLOWS
from printroom.workflows.order import OrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_recorded_histories_of_each_kind_of_run_to_replay():
    assert {p.stem for p in HISTORIES} >= {
        *(f"0.1.0-order-H-{case}" for case in ("SHIPPED", "INTERNATIONAL", "OUTAGE", "APPROVAL", "REFUSED", "REMINDED", "ESCALATED")),
        "0.1.0-budget-H-APPROVAL", "0.1.0-budget-H-ESCALATED", "0.1.0-cost-centre-marketing",
        # Issue 20's paths: a restarted order, an email waiting for its PDF, an approval cancelled from outside and
        # started again, a cost centre continuing as new with its warning carried.
        *(f"0.1.0-order-H-{case}" for case in ("RESTARTED", "PDF", "WITHDRAWN")), "0.1.0-budget-H-WITHDRAWN",
        "0.1.0-cost-centre-carried",
        # Issue 24: a bounced receipt held again and sent to a corrected address, which the order keeps.
        "0.1.0-order-H-BOUNCED",
        # Issue 20's gaps: a forged hold_drafts refused, a decision kept through a late cancel on budget-<id>.
        *(f"0.1.0-{kind}-H-{case}" for kind in ("order", "budget") for case in ("FORGED", "LATE-CANCEL")),
        # An approval's held request drafted again in one task, as written before OldestDraftHeld (5065b81: no upsert
        # there) and since (behind the oldest-draft-held patch): orders running across the change keep replaying.
        "0.1.0-order-H-REDRAFTED", "0.1.0-order-H-REDRAFTED-before-oldest-draft-held",
        # Started through a client with PrintroomPlugin: its first status among its start's search attributes.
        "0.1.0-order-H-PLUGIN",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_recorded_history_replays_without_nondeterminism(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def test_the_replayer_catches_a_change_to_the_order_table(monkeypatch):
    """The guard works: a table whose `accept` fires no email no longer matches the recorded history.
    (Adding a second email to `accept` would not show here: one local activity carries both.)"""
    import dataclasses

    from printroom.statemachines import order as table_module

    changed = tuple(
        dataclasses.replace(row, emails=()) if row.trigger == "accept" else row
        for row in table_module.ORDER.transitions
    )
    # statemachines is passed through the sandbox, so the replayed workflow reads this table.
    monkeypatch.setattr(table_module, "ORDER", dataclasses.replace(table_module.ORDER, transitions=changed))
    path = Path(__file__).parent / "histories" / "0.1.0-order-H-SHIPPED.json"
    history = WorkflowHistory.from_json("order-H-SHIPPED", path.read_text())
    replayer = Replayer(workflows=[OrderWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    # Temporal's own check catches changed commands; a changed batch is caught by the workflow's.
    assert isinstance(result.replay_failure, (NondeterminismError, RuntimeError)), result.replay_failure
    assert "nondeterminism" in str(result.replay_failure).lower()


async def test_replaying_through_the_plugin_keeps_printrooms_machine_quiet(caplog):
    """The Machine enters every state again while a history replays; the plugin keeps its INFO lines out."""
    from printroom import PrintroomPlugin

    caplog.set_level(logging.INFO, logger="transitions.core")
    path = Path(__file__).parent / "histories" / "0.1.0-order-H-SHIPPED.json"
    history = WorkflowHistory.from_json("order-H-SHIPPED", path.read_text())
    result = await Replayer(workflows=[], plugins=[PrintroomPlugin(Settings())]).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    machine_lines = [r.getMessage() for r in caplog.records if r.name == "transitions.core" and "printroom order" in r.getMessage()]
    assert machine_lines == []


async def test_the_replayer_catches_a_validator_that_now_refuses_what_a_running_order_was_started_with(monkeypatch):
    """Validation decides what a workflow accepts, so it is workflow code: an order started with an international
    address must still replay if the models ever become stricter about addresses."""
    from pydantic import model_validator

    from printroom import models

    class AsciiOnlyOrder(models.Order):
        @model_validator(mode="after")
        def _ascii_addresses(self) -> "AsciiOnlyOrder":
            if not str(self.customer.email).isascii():
                raise ValueError("addresses must be ASCII")
            return self

    monkeypatch.setattr(models, "Order", AsciiOnlyOrder)  # models are passed through the sandbox
    path = Path(__file__).parent / "histories" / "0.1.0-order-H-INTERNATIONAL.json"
    history = WorkflowHistory.from_json("order-H-INTERNATIONAL", path.read_text())
    replayer = Replayer(workflows=[OrderWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
