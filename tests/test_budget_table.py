"""The budget approval table on its own: no Temporal, no IO."""

from __future__ import annotations

import pytest

from printroom.statemachines.budget import BUDGET
from printroom.statemachines.table import Lifecycle, Transition
from printroom.approvers import same_address


class Moves:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, tuple[str, ...]]] = []

    def __call__(self, row: Transition, source: str, detail) -> None:
        self.seen.append((row.trigger, source, row.dest, row.emails))


def test_an_approval_starts_requested_and_asks_the_approvers():
    approval = Lifecycle(BUDGET, Moves())
    assert approval.state == "requested" and not approval.closed
    assert BUDGET.emails_on_start == ("approval_requested",)
    assert approval.allowed_triggers("approver") == ["approve", "reject"]
    assert approval.allowed_triggers("system") == ["escalate", "expire", "cancel", "withdraw"]


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([("approve", "approver")], "approved"),
        ([("reject", "approver")], "rejected"),
        ([("escalate", "system"), ("approve", "approver")], "approved"),
        ([("escalate", "system"), ("expire", "system")], "expired"),
        ([("cancel", "system")], "cancelled"),
    ],
)
def test_every_path_ends_in_a_final_state_where_nobody_can_answer_any_more(path, end):
    approval = Lifecycle(BUDGET, Moves())
    for trigger, actor in path:
        assert approval.follow(trigger, actor, by="head@example.org") is None
    assert approval.state == end and approval.closed
    assert approval.allowed_triggers("approver") == approval.allowed_triggers("system") == []


def test_the_first_decision_wins_and_the_second_is_refused_with_the_state():
    approval = Lifecycle(BUDGET, Moves())
    approval.follow("approve", "approver")
    reason = approval.follow("reject", "approver")
    assert reason == "'reject' is not allowed while the approval is 'approved'; allowed now: nothing (the approval is closed)"
    assert approval.state == "approved"


def test_approvers_cannot_escalate_or_cancel_and_the_system_cannot_decide():
    approval = Lifecycle(BUDGET, Moves())
    assert approval.follow("escalate", "approver").startswith("unknown trigger 'escalate'")
    assert approval.follow("approve", "system").startswith("unknown trigger 'approve'")
    assert approval.state == "requested"


def test_escalation_happens_once_and_asks_the_new_approvers():
    moves = Moves()
    approval = Lifecycle(BUDGET, moves)
    approval.follow("escalate", "system")
    assert moves.seen == [("escalate", "requested", "escalated", ("approval_requested",))]
    assert "not allowed while the approval is 'escalated'" in approval.follow("escalate", "system")


def test_cancelling_tells_the_approvers():
    moves = Moves()
    Lifecycle(BUDGET, moves).follow("cancel", "system")
    assert moves.seen == [("cancel", "requested", "cancelled", ("approval_cancelled",))]


def test_an_approval_cancelled_from_outside_its_order_ends_cancelled_and_tells_nobody():
    moves = Moves()
    approval = Lifecycle(BUDGET, moves)
    approval.follow("withdraw", "system")
    assert approval.closed and moves.seen == [("withdraw", "requested", "cancelled", ())]
    assert "withdraw" not in approval.allowed_triggers("operator") and approval.follow("withdraw", "approver")


def test_only_operators_ask_again_and_only_while_it_waits_which_asks_the_approvers_afresh():
    moves = Moves()
    approval = Lifecycle(BUDGET, moves)
    assert approval.allowed_triggers("operator") == ["ask_again"]
    assert approval.follow("ask_again", "approver").startswith("unknown trigger 'ask_again'")
    approval.follow("escalate", "system")
    assert approval.follow("ask_again", "operator", by="Léa") is None
    assert moves.seen[-1] == ("ask_again", "escalated", "requested", ("approval_requested",))
    assert approval.may("escalate", "system")  # the new approvers' silence may escalate again
    approval.follow("approve", "approver")
    assert "not allowed while the approval is 'approved'" in approval.follow("ask_again", "operator")


def test_the_mermaid_diagram_draws_the_approval():
    diagram = BUDGET.to_mermaid()
    assert "    [*] --> requested: approval_requested\n" in diagram
    assert "    requested --> escalated: escalate / approval_requested\n" in diagram
    assert "    escalated --> cancelled: cancel / approval_cancelled\n" in diagram
    assert "    escalated --> requested: ask_again / approval_requested\n" in diagram
    assert diagram.count("--> [*]") == 4


@pytest.mark.parametrize(
    "one,other,same",
    [
        ("Chefin@XN--BCHER-KVA.example", "chefin@bücher.example", True),
        ("head@ｂücher.example", "head@xn--bcher-kva.example", True),  # fullwidth, as some keyboards write it
        ("a@straße.de", "a@strasse.de", False),  # two domains under IDNA 2008
        ("straße@example.de", "strasse@example.de", False),  # two mailboxes
        ("head@example.org.", "HEAD@example.org", True),
    ],
)
def test_approver_addresses_compare_as_mail_delivers_them(one, other, same):
    assert same_address(one, other) is same
