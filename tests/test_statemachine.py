"""The order table on its own: no Temporal, no IO."""

from __future__ import annotations

import pytest
from transitions import MachineError

from statemachines.order import EMAIL_TRIGGERS, ORDER
from statemachines.table import StateTable, Transition


class Order:
    state: str


def walk(*triggers: str) -> str:
    order = Order()
    ORDER.build_machine(order)
    for trigger in triggers:
        order.trigger(trigger)  # type: ignore[attr-defined]
    return order.state


def test_the_happy_path_ends_shipped_and_shipped_is_final():
    assert walk("accept", "start_production", "complete", "ship") == "shipped"
    assert "shipped" in ORDER.final
    assert ORDER.allowed_from("shipped") == ()


@pytest.mark.parametrize("source", ["submitted", "awaiting_approval", "accepted", "in_production"])
def test_an_order_can_be_cancelled_until_it_is_completed(source):
    assert ORDER.transition("cancel", source).dest == "cancelled"


@pytest.mark.parametrize("source", ["completed", "shipped", "rejected", "cancelled"])
def test_a_completed_or_closed_order_cannot_be_cancelled(source):
    assert ORDER.transition("cancel", source) is None


def test_the_machine_refuses_what_the_table_forbids_and_has_no_auto_transitions():
    order = Order()
    ORDER.build_machine(order)
    with pytest.raises(MachineError):
        order.trigger("ship")  # type: ignore[attr-defined]
    assert order.state == "submitted"
    assert not hasattr(order, "to_shipped")


def test_each_transition_fires_its_email_trigger():
    assert ORDER.transition("accept", "submitted").emails == ("order_accepted",)
    assert ORDER.transition("reject_budget", "awaiting_approval").emails == ("order_approval_rejected",)
    assert ORDER.emails_on_start == ("order_received", "order_received_operator")


def test_operators_send_the_public_triggers_and_not_the_systems_steps():
    assert set(ORDER.triggers_by("operator")) == {"accept", "reject", "start_production", "complete", "ship", "cancel"}
    assert "request_approval" not in ORDER.triggers_by("operator")
    assert set(ORDER.triggers_by("approver")) == {"approve_budget", "reject_budget"}


def test_every_email_trigger_of_the_spec_is_fired_by_the_table():
    spec = {
        "order_received", "order_received_operator", "order_accepted", "order_rejected", "order_in_production",
        "order_completed", "order_shipped", "order_cancelled", "approval_requested", "approval_reminder",
        "order_approved", "order_approval_rejected",
    }
    assert set(EMAIL_TRIGGERS) == spec


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
