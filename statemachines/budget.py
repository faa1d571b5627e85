"""The budget approval of one order: who is asked, who may answer, what silence leads to, and the email each
move fires. Approvers decide; the system escalates, expires and cancels."""

from __future__ import annotations

from .table import StateTable, Transition

REQUESTED = "requested"
ESCALATED = "escalated"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"

WAITING = (REQUESTED, ESCALATED)

BUDGET = StateTable(
    name="approval",
    states=(REQUESTED, ESCALATED, APPROVED, REJECTED, EXPIRED, CANCELLED),
    initial=REQUESTED,
    final=frozenset({APPROVED, REJECTED, EXPIRED, CANCELLED}),
    emails_on_start=("approval_requested",),
    transitions=(
        #          trigger     sources    dest       emails                     by
        Transition("approve",  WAITING,   APPROVED,  (),                        by="approver"),
        Transition("reject",   WAITING,   REJECTED,  (),                        by="approver"),
        # Silence, after budget.max_reminders reminders, as budget.on_timeout says: new approvers, or no.
        Transition("escalate", (REQUESTED,), ESCALATED, ("approval_requested",), by="system"),
        Transition("expire",   WAITING,   EXPIRED,   (),                        by="system"),
        # The order was cancelled while it waited: the approvers need not answer any more.
        Transition("cancel",   WAITING,   CANCELLED, ("approval_cancelled",),   by="system"),
        # Someone cancelled `budget-<id>` itself (the Web UI's Request Cancellation): the order was not cancelled,
        # so nobody is told it was; the order waits, and an operator's ask_again starts a new approval.
        Transition("withdraw", WAITING,   CANCELLED, (),                        by="system"),
        # Nobody could be asked, or the approvers stayed silent: the operators fixed the settings and ask again
        # (the approvers of the settings of now, reminded afresh).
        Transition("ask_again", WAITING,  REQUESTED, ("approval_requested",),   by="operator"),
    ),
)

# Sent on a timer, not by a move: reminders to approvers, and the operators told that approvers stay silent.
APPROVAL_REMINDER = "approval_reminder"
APPROVAL_OVERDUE = "approval_overdue"

# Every email the approval sends (what it may hand to its order as a held draft).
APPROVAL_EMAILS = frozenset(
    {*BUDGET.emails_on_start, *(e for row in BUDGET.transitions for e in row.emails), APPROVAL_REMINDER, APPROVAL_OVERDUE}
)
# The emails that ask the approvers for a decision: a held draft of one is no longer needed once the approval has
# ended or asks again.
ASKING_EMAILS = frozenset({*BUDGET.emails_on_start, APPROVAL_REMINDER})
