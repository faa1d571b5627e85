"""Every email trigger (template name) of the product, from the tables, the timers and the cost centres."""

from __future__ import annotations

from .budget import APPROVAL_OVERDUE, APPROVAL_REMINDER, BUDGET
from .order import DRAFT_WAITING, ORDER

# A cost centre's approvers, once a period, when its spending crosses its warning threshold.
BUDGET_WARNING = "budget_warning"

# In the order an administrator reads them: the order's, then the approval's, then those sent on timers.
EMAIL_TRIGGERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*ORDER.email_triggers(), *BUDGET.email_triggers(), APPROVAL_REMINDER, APPROVAL_OVERDUE, BUDGET_WARNING, DRAFT_WAITING]
    )
)

# Notices to the print room's operators: they never wait behind an email to a customer or an approver (their
# first attempts have a lane of their own).
OPERATOR_NOTICES = frozenset({DRAFT_WAITING, "order_received_operator", APPROVAL_OVERDUE})
