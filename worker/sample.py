"""Sample order data for previews, `templates check` and the variable list, when no real order is given."""

from __future__ import annotations

from datetime import datetime, timezone

from decimal import Decimal

from printroom.models import ApprovalProgress, DraftSummary, Order, Spending, StatusEmailRequest
from printroom.statemachines.emails import BUDGET_WARNING
from printroom.statemachines.order import AWAITING_APPROVAL, DRAFT_WAITING, ORDER

SAMPLE_ORDER = Order.model_validate(
    {
        "id": "PO-1001",
        "shop": "default",
        "customer": {"name": "Marie Curie", "email": "marie@example.org", "wants_status_emails": True},
        "price": {"amount": "240.00", "currency": "EUR"},
        "budget": {"limit": "200.00", "approvers": ["head@example.org"]},
        "ordered_at": "2026-11-27T10:15:00+00:00",
        "due_date": "2026-12-04",
        "jobs": [
            {"id": "J1", "name": "Flyers A5", "product": "Flyer", "quantity": 500},
            {"id": "J2", "name": "Conference posters", "product": "Poster A2", "quantity": 20},
        ],
    }
)


def status_for(email_trigger: str) -> tuple[str, str | None]:
    """The status an email trigger leaves the order in, and the one before: what a real email would show."""
    if email_trigger.startswith("approval_"):  # the approval's own emails, while the order waits for it
        return AWAITING_APPROVAL, ORDER.initial
    for row in ORDER.transitions:
        if email_trigger in row.emails:
            return row.dest, row.sources[0]
    return ORDER.initial, None


SAMPLE_DRAFT = DraftSummary(
    id="d1",
    email_trigger="order_accepted",
    audience="customer",
    to=["marie@example.org"],
    subject="Your order PO-1001 has been accepted",
    created_at=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc),
    reason="marie@example.org refused by the server: 550 5.1.1 mailbox unavailable",
)


SAMPLE_APPROVAL = ApprovalProgress(
    requested_at=datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc), reminders_sent=2, approvers=["head@example.org"],
    answer_by=datetime(2026, 11, 29, 9, 30, tzinfo=timezone.utc),
)
SAMPLE_SPENDING = Spending(
    cost_centre="marketing", period="2026-11", spent=Decimal("4150.00"), budget=Decimal("5000.00"), currency="EUR",
    warn_at_percent=Decimal(80), orders=12,
)


def sample_request(email_trigger: str, order: Order = SAMPLE_ORDER) -> StatusEmailRequest:
    status, previous = status_for(email_trigger)
    return StatusEmailRequest(
        waiting_draft=SAMPLE_DRAFT if email_trigger == DRAFT_WAITING else None,
        approval=SAMPLE_APPROVAL if email_trigger.startswith("approval_") else None,
        spending=SAMPLE_SPENDING if email_trigger == BUDGET_WARNING else None,
        order=order,
        email_trigger=email_trigger,
        status=status,
        previous_status=previous,
        by="Léa Martin",
        comment="Please collect your order from the front desk after 2 pm.",
        changed_at=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc),
    )

