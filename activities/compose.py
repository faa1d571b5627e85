"""Pure composition: an order and a trigger become template variables, and a rendered email a MIME message."""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from activities.rendering import RenderedEmail
from printroom.models import Audience, Money, StatusEmailRequest


def format_money(money: Money | None, amount: Any = None) -> str:
    if money is None:
        return ""
    return f"{(money.amount if amount is None else amount):.2f} {money.currency}"


def template_variables(
    request: StatusEmailRequest, audience: Audience, *, print_room_name: str, order_url: str
) -> dict[str, Any]:
    """The variables a template may use; names are those a print room writes between % signs."""
    order = request.order
    return {
        "OrderNumber": order.id,
        "OrderStatus": request.status,
        "PreviousStatus": request.previous_status or "",
        "OrderLink": order_url,
        "ShopName": order.shop,
        "CustomerName": order.customer.name,
        "CustomerEmail": str(order.customer.email),
        "Price": format_money(order.price),
        "BudgetLimit": format_money(order.price, order.budget.limit) if order.budget and order.price else "",
        "ChangedBy": request.by,
        "Comment": request.comment,
        "PrintRoomName": print_room_name,
        "Audience": audience,
        "Jobs": [
            {"JobId": j.id, "JobName": j.name, "Product": j.product, "Quantity": j.quantity or ""} for j in order.jobs
        ],
    }


_UNSAFE_IN_MESSAGE_ID = re.compile(r"[^A-Za-z0-9._-]")


def message_id(request: StatusEmailRequest, audience: Audience, domain: str) -> str:
    """Deterministic per order, trigger occurrence and audience, so a retried send can be recognised."""
    parts = (request.order.id, request.email_trigger, str(request.occurrence), audience)
    local = ".".join(_UNSAFE_IN_MESSAGE_ID.sub(lambda m: f"={ord(m.group()):02X}", p) for p in parts)
    return f"<{local}@{domain}>"


def build_message(
    rendered: RenderedEmail,
    *,
    sender: Address,
    to: list[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """A multipart/alternative message: the plain-text part first, the HTML part preferred by clients."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # After the body: set_content() drops Content-* headers set before it.
    message["Content-Language"] = rendered.language
    return message
