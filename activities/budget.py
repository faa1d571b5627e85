"""What the settings say about an order's budget approval and its cost centre: read by activities, so the
approval and cost-centre workflows never read settings themselves."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from printroom.models import ApprovalPlan, CostCentreTerms, Order
from printroom.settings import Settings


def cost_centre_terms(settings: Settings, name: str) -> CostCentreTerms | None:
    centre = settings.cost_centres.get(name)
    if centre is None:
        return None
    return CostCentreTerms(
        name=name, budget=centre.budget, currency=centre.currency, warn_at_percent=centre.warn_at_percent,
        period=centre.period, approvers=[str(a) for a in centre.approvers], timezone=settings.timezone,
    )  # fmt: skip


def unknown_cost_centre(settings: Settings, name: str) -> str:
    known = ", ".join(sorted(settings.cost_centres)) or "none: add [cost_centres.<name>] to the settings"
    return f"cost centre {name!r} is not in the settings (known: {known})"


def plan_approval(settings: Settings, order: Order) -> ApprovalPlan:
    """Approvers from the order's budget.approvers, else from its cost centre; reminders and escalation from
    `budget`. A plan with nobody to ask says so in `problem`: the operators are told at once."""
    budget = settings.budget
    problems: list[str] = []
    approvers = [str(a) for a in order.budget.approvers] if order.budget else []
    approvers_from = "the order (budget.approvers)"
    if order.cost_centre and (terms := cost_centre_terms(settings, order.cost_centre)) is None:
        problems.append(unknown_cost_centre(settings, order.cost_centre))
    elif not approvers and order.cost_centre and terms is not None:
        approvers, approvers_from = terms.approvers, f"cost centre {order.cost_centre}"
        if not approvers:
            problems.append(f"cost centre {order.cost_centre!r} names no approvers (cost_centres.{order.cost_centre}.approvers)")
    if not approvers and not problems:
        problems.append("the order names no approvers (budget.approvers) and no cost centre that does (cost_centre)")
    return ApprovalPlan(
        approvers=approvers, approvers_from=approvers_from, remind_every=budget.remind_every,
        max_reminders=budget.max_reminders, on_timeout=budget.on_timeout,
        escalate_to=[str(a) for a in budget.escalate_to], problem="; ".join(problems),
    )  # fmt: skip


def spending_period(now: datetime, terms: CostCentreTerms) -> str:
    """The period a spending counts in, in the print room's time zone: 1 Dec 00:30 in Paris is December."""
    local = now.astimezone(ZoneInfo(terms.timezone))
    return f"{local:%Y-%m}" if terms.period == "month" else f"{local:%Y}"
