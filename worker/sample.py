"""Sample order data for previews, `templates check` and the variable list, when no real order is given."""

from __future__ import annotations

from datetime import datetime, timezone

from printroom.models import DraftSummary, Order, StatusEmailRequest
from printroom.statemachines.order import APPROVAL_REMINDER, AWAITING_APPROVAL, DRAFT_WAITING, ORDER

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
    if email_trigger == APPROVAL_REMINDER:
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


def sample_request(email_trigger: str, order: Order = SAMPLE_ORDER) -> StatusEmailRequest:
    status, previous = status_for(email_trigger)
    return StatusEmailRequest(
        waiting_draft=SAMPLE_DRAFT if email_trigger == DRAFT_WAITING else None,
        order=order,
        email_trigger=email_trigger,
        status=status,
        previous_status=previous,
        by="Léa Martin",
        comment="Please collect your order from the front desk after 2 pm.",
        changed_at=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc),
    )

