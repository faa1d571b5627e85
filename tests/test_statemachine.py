"""The order table on its own: no Temporal, no IO."""

from __future__ import annotations

import pytest

from printroom.statemachines.budget import BUDGET
from printroom.statemachines.emails import EMAIL_TRIGGERS
from printroom.statemachines.order import ORDER
from printroom.statemachines.table import Lifecycle, StateTable, Transition


class Moves:
    """Collects what the Machine's callbacks report, as the order workflow does."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, tuple[str, ...], str]] = []

    def __call__(self, row: Transition, source: str, detail) -> None:
        self.seen.append((row.trigger, source, row.dest, row.emails, detail.get("by", "")))


def order_at(*triggers: str) -> Lifecycle:
    order = Lifecycle(ORDER, Moves())
    for trigger in triggers:
        assert order.follow(trigger, "operator", by="Léa") is None, trigger
    return order


def test_the_happy_path_ends_shipped_and_shipped_is_final():
    order = order_at("accept", "start_production", "complete", "ship")
    assert order.state == "shipped" and order.closed
    assert order.allowed_triggers("operator") == []


@pytest.mark.parametrize("path", [(), ("request_approval",), ("accept",), ("accept", "start_production")])
def test_an_order_can_be_cancelled_until_it_is_completed(path):
    order = Lifecycle(ORDER, Moves())
    for trigger in path:
        order.follow(trigger, "system" if trigger == "request_approval" else "operator")
    assert order.may("cancel", "operator")
    assert order.follow("cancel", "operator") is None
    assert order.state == "cancelled"


@pytest.mark.parametrize("path", [("accept", "start_production", "complete"), ("reject",)])
def test_a_completed_or_closed_order_cannot_be_cancelled(path):
    order = order_at(*path)
    assert not order.may("cancel", "operator")
    reason = order.follow("cancel", "operator")
    assert reason is not None and f"'cancel' is not allowed while the order is {order.state!r}" in reason


def test_a_forbidden_trigger_is_refused_with_the_reason_and_changes_nothing():
    moves = Moves()
    order = Lifecycle(ORDER, moves)
    assert order.follow("ship", "operator") == (
        "'ship' is not allowed while the order is 'submitted'; allowed now: accept, reject, cancel"
    )
    assert order.follow("teleport", "operator") == (
        "unknown trigger 'teleport'; known: accept, reject, start_production, complete, ship, cancel"
    )
    assert order.state == "submitted" and moves.seen == []
    assert order_at("reject").follow("accept", "operator").endswith("allowed now: nothing (the order is closed)")


def test_who_sends_a_trigger_is_a_condition_the_machine_checks():
    order = Lifecycle(ORDER, Moves())
    # request_approval is the system's own step: an operator cannot send it, the system can.
    assert "unknown trigger 'request_approval'" in order.follow("request_approval", "operator")
    assert not order.may("request_approval", "operator")
    assert not order.machine().may_request_approval(actor="operator")  # type: ignore[attr-defined]  # the Machine's own answer
    assert order.follow("request_approval", "system") is None
    assert order.state == "awaiting_approval"
    assert order.allowed_triggers("operator") == ["cancel"]
    assert order.allowed_triggers("system") == ["approve_budget", "reject_budget"]
    # Approvers answer the approval's own table, never the order's.
    assert order.allowed_triggers("approver") == []


def test_the_listener_sees_the_new_state_and_no_machine_outlives_its_decision():
    seen: list[str] = []
    order = Lifecycle(ORDER, lambda row, source, detail: seen.append(order.state))
    assert order.follow("accept", "operator") is None
    assert seen == ["accepted"] and order.state == "accepted"
    assert not hasattr(order, "may_cancel") and not hasattr(order, "cancel")  # the Machine binds its triggers elsewhere
    with pytest.raises(ValueError, match="'teleported' is not one of its states"):
        Lifecycle(ORDER, Moves(), state="teleported")


def test_the_machine_has_no_auto_transitions_and_raises_on_a_direct_forbidden_trigger():
    """A decision's Machine holds the rows that leave the current state: a trigger no row takes from here is not
    the Machine's to fire (it raises), and one whose row refuses its sender is not taken; nothing moves."""
    order = Lifecycle(ORDER, Moves())
    machine = order.machine()
    with pytest.raises(AttributeError, match="Do not know event named 'ship'"):
        machine.trigger("ship", actor="operator")  # type: ignore[attr-defined]
    assert machine.trigger("request_approval", actor="operator") is False  # type: ignore[attr-defined]  # the system's
    assert order.state == "submitted" and machine.state == "submitted"
    assert not hasattr(machine, "to_shipped") and not hasattr(machine, "may_ship") and hasattr(machine, "may_accept")
    assert order.allowed_triggers("operator") == ["accept", "reject", "cancel"]


def test_each_move_reports_its_row_and_emails_through_the_machines_callback():
    moves = Moves()
    order = Lifecycle(ORDER, moves)
    order.follow("accept", "operator", by="Léa", comment="")
    order.follow("request_approval", "system", by="printroom")  # not from 'accepted': nothing reported
    assert moves.seen == [("accept", "submitted", "accepted", ("order_accepted",), "Léa")]
    approval = Lifecycle(ORDER, moves)
    approval.follow("request_approval", "system")
    approval.follow("reject_budget", "system", by="head@example.org")
    assert moves.seen[-1] == ("reject_budget", "awaiting_approval", "rejected", ("order_approval_rejected",), "head@example.org")
    assert ORDER.emails_on_start == ("order_received", "order_received_operator")


def test_operators_send_the_public_triggers_and_not_the_systems_steps():
    assert set(ORDER.triggers_by("operator")) == {"accept", "reject", "start_production", "complete", "ship", "cancel"}
    assert "request_approval" not in ORDER.triggers_by("operator")
    assert ORDER.triggers_by("approver") == ()


def test_every_email_trigger_of_the_spec_is_fired_by_the_table_and_reminders_by_timers():
    spec = {
        "order_received", "order_received_operator", "order_accepted", "order_rejected", "order_in_production",
        "order_completed", "order_shipped", "order_cancelled", "approval_requested", "approval_reminder",
        "order_approved", "order_approval_rejected",
    }
    assert spec <= set(ORDER.email_triggers()) | set(BUDGET.email_triggers()) | {"approval_reminder"}
    assert set(EMAIL_TRIGGERS) == spec | {"draft_waiting", "approval_cancelled", "approval_overdue", "budget_warning"}


def test_the_mermaid_diagram_draws_every_transition_and_final_state():
    diagram = ORDER.to_mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    assert "    completed --> shipped: ship / order_shipped\n" in diagram
    assert "    [*] --> submitted: order_received, order_received_operator\n" in diagram
    assert diagram.count("--> [*]") == len(ORDER.final)
    edges = sum(len(row.sources) for row in ORDER.transitions)
    assert diagram.count(" --> ") - 1 - len(ORDER.final) == edges


def test_a_table_naming_an_unknown_state_is_refused_when_it_is_declared():
    with pytest.raises(ValueError, match="unknown states \\['nowhere'\\]"):
        StateTable("bad", ("a",), "a", frozenset(), (Transition("go", ("a",), "nowhere"),))


def test_the_readme_shows_the_diagram_of_the_table_as_it_is():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "```mermaid\n" + ORDER.to_mermaid() + "```" in readme
