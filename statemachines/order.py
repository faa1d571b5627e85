"""The order lifecycle: every status an order can have, who moves it, and the email each move fires."""

from __future__ import annotations

from .table import StateTable, Transition

SUBMITTED = "submitted"
AWAITING_APPROVAL = "awaiting_approval"
ACCEPTED = "accepted"
REJECTED = "rejected"
IN_PRODUCTION = "in_production"
COMPLETED = "completed"
SHIPPED = "shipped"
CANCELLED = "cancelled"

ORDER = StateTable(
    name="order",
    states=(SUBMITTED, AWAITING_APPROVAL, ACCEPTED, REJECTED, IN_PRODUCTION, COMPLETED, SHIPPED, CANCELLED),
    initial=SUBMITTED,
    final=frozenset({REJECTED, SHIPPED, CANCELLED}),
    emails_on_start=("order_received", "order_received_operator"),
    transitions=(
        #          trigger             sources                                                dest            emails
        Transition("accept",           (SUBMITTED,),                                          ACCEPTED,       ("order_accepted",)),
        Transition("reject",           (SUBMITTED,),                                          REJECTED,       ("order_rejected",)),
        Transition("start_production", (ACCEPTED,),                                           IN_PRODUCTION,  ("order_in_production",)),
        Transition("complete",         (IN_PRODUCTION,),                                      COMPLETED,      ("order_completed",)),
        Transition("ship",             (COMPLETED,),                                          SHIPPED,        ("order_shipped",)),
        Transition("cancel",           (SUBMITTED, AWAITING_APPROVAL, ACCEPTED, IN_PRODUCTION), CANCELLED,    ("order_cancelled",)),
        # Budget approval runs as a table and workflow of its own (statemachines/budget.py); the order waits for it
        # and moves on its outcome. These moves are the system's: approvers answer the approval, not the order.
        Transition("request_approval", (SUBMITTED,),                                          AWAITING_APPROVAL, (), by="system"),
        Transition("approve_budget",   (AWAITING_APPROVAL,),                                  SUBMITTED,      ("order_approved",), by="system"),
        Transition("reject_budget",    (AWAITING_APPROVAL,),                                  REJECTED,       ("order_approval_rejected",), by="system"),
    ),
)

# Sent on a timer, not by a transition: the operators reminded of a draft that waits for them.
DRAFT_WAITING = "draft_waiting"

# An order's price counts in its cost centre's spending once, on the first of these moves; it comes off again if
# the order then ends in a state where it is not made.
COUNTED_ON = frozenset({"accept", "approve_budget"})
NOT_MADE = frozenset({REJECTED, CANCELLED})
