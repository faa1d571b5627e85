"""The catalogue of template variables (T4): each name, what it means, and how its value comes from an order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from markupsafe import Markup, escape

from printroom.models import ApprovalProgress, Audience, DraftSummary, Job, Money, Order, Spending, StatusEmailRequest
from printroom.statemachines.emails import BUDGET_WARNING
from printroom.statemachines.order import DRAFT_WAITING  # the operators' reminder of a held draft: variables of its own

Scope = Literal["common", "order", "job", "draft", "approval", "spending", "smtp_test"]
SMTP_TEST = "smtp_test"  # the template of `printroom smtp send-test`, with variables of its own
LOGO_IMAGE = "logo"


@dataclass(frozen=True)
class EmailContext:
    """Everything variables are computed from, besides the order: who sends, in which language, when."""

    language: str
    print_room_name: str
    sender_address: str
    order_url_pattern: str
    now: datetime
    # The print room's time zone: a status changed at 23:30 UTC is the next day in Paris.
    timezone: tzinfo = UTC
    images: frozenset[str] = frozenset()
    request: StatusEmailRequest | None = None
    audience: Audience = "customer"
    smtp: dict[str, Any] = field(default_factory=dict)
    # The order's page in the Temporal Web UI (temporal.ui_url): where operators act, so their links lead there.
    operator_url: str | None = None
    # What an operator added when sending a held draft (%OperatorNote%).
    operator_note: str = ""
    # This approver's signed answer links (decision -> token) and where `printroom web` answers (web.public_url).
    answer_tokens: Mapping[str, str] = field(default_factory=dict)
    web_url: str | None = None
    # The operators' desk (a signed link, valid desk.link_ttl), in the emails that tell them a draft waits.
    desk_url: str | None = None
    # That draft's own page there (its editor), in the same emails.
    draft_url: str | None = None

    @property
    def locale(self) -> Locale:
        return _locale(self.language)

    @property
    def order(self) -> Order:
        assert self.request is not None, "an order variable outside an order's email"
        return self.request.order


@dataclass(frozen=True)
class Variable:
    name: str
    scope: Scope
    description: str
    value: Callable[[EmailContext], Any]


@dataclass(frozen=True)
class JobVariable:
    name: str
    description: str
    value: Callable[[Job, EmailContext], Any]


_LOCALES: dict[str, Locale] = {}


def _locale(language: str) -> Locale:
    if language not in _LOCALES:
        try:
            _LOCALES[language] = Locale.parse(language.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            _LOCALES[language] = Locale.parse("en")
    return _LOCALES[language]


def money(amount: Decimal | None, currency: str, ctx: EmailContext) -> str:
    return "" if amount is None else format_currency(amount, currency, locale=ctx.locale)


def day(value: date | datetime | None, ctx: EmailContext) -> str:
    """A date as the email's language writes it; a moment is first placed in the print room's time zone."""
    if isinstance(value, datetime):
        value = value.astimezone(ctx.timezone) if value.tzinfo else value
    return "" if value is None else format_date(value, "long", locale=ctx.locale)


def order_url(ctx: EmailContext) -> str:
    """T6: the shop's pattern with the order id made URL-safe (`PO 7/2` -> `PO%207%2F2`); for operators, the
    order's page in the Temporal Web UI when the settings name one."""
    if ctx.audience == "operators" and ctx.operator_url:
        return ctx.operator_url
    return ctx.order_url_pattern.format(order_id=quote(ctx.order.id, safe=""))


def _draft(ctx: EmailContext, read: Callable[[DraftSummary], Any]) -> Any:
    draft = ctx.request.waiting_draft if ctx.request else None
    return read(draft) if draft else ""


def _price(ctx: EmailContext) -> str:
    price: Money | None = ctx.order.price
    return money(price.amount, price.currency, ctx) if price else ""


def _budget(ctx: EmailContext) -> str:
    order = ctx.order
    if not order.budget or order.budget.limit is None:
        return ""
    return money(order.budget.limit, order.budget.currency or (order.price.currency if order.price else "EUR"), ctx)


def _approval(ctx: EmailContext, read: Callable[[ApprovalProgress], Any]) -> Any:
    progress = ctx.request.approval if ctx.request else None
    return read(progress) if progress else ""


def _approvers(ctx: EmailContext) -> str:
    request = ctx.request
    if request is not None and request.approval is not None and request.approval.approvers:
        return ", ".join(request.approval.approvers)
    if request is not None and request.approvers is not None:
        return ", ".join(request.approvers)
    return ", ".join(str(a) for a in ctx.order.budget.approvers) if ctx.order.budget else ""


def _answer_url(ctx: EmailContext, decision: str) -> str:
    token = ctx.answer_tokens.get(decision)
    return f"{ctx.web_url}/{ctx.language}/approvals/{token}" if token and ctx.web_url else ""


def _spending(ctx: EmailContext, read: Callable[[Spending], Any]) -> Any:
    spending = ctx.request.spending if ctx.request else None
    return read(spending) if spending else ""


def _logo(ctx: EmailContext) -> Markup:
    if LOGO_IMAGE in ctx.images:
        return Markup('<img src="cid:{}" alt="{}" class="logo">').format(LOGO_IMAGE, ctx.print_room_name)
    return escape(ctx.print_room_name)


STATUS_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "submitted": "received", "awaiting_approval": "awaiting budget approval", "accepted": "accepted",
        "rejected": "rejected", "in_production": "in production", "completed": "completed", "shipped": "shipped",
        "cancelled": "cancelled",
    },
    "fr": {
        "submitted": "reçue", "awaiting_approval": "en attente d'approbation du budget", "accepted": "acceptée",
        "rejected": "refusée", "in_production": "en production", "completed": "terminée", "shipped": "expédiée",
        "cancelled": "annulée",
    },
    "de": {
        "submitted": "eingegangen", "awaiting_approval": "wartet auf Budgetfreigabe", "accepted": "angenommen",
        "rejected": "abgelehnt", "in_production": "in Produktion", "completed": "fertiggestellt",
        "shipped": "versandt", "cancelled": "storniert",
    },
}  # fmt: skip


def status_label(status: str | None, language: str) -> str:
    if not status:
        return ""
    labels = STATUS_LABELS.get(language.split("-")[0], STATUS_LABELS["en"])
    return labels.get(status, status.replace("_", " "))


VARIABLES: tuple[Variable, ...] = (
    Variable("PrintRoomName", "common", "the sender's display name (the shop's, else the print room's)", lambda c: c.print_room_name),
    Variable("SenderAddress", "common", "the sender's email address", lambda c: c.sender_address),
    Variable("Logo", "common", "the logo image (settings templates.images.logo), else the print room's name", _logo),
    Variable("OrderNumber", "order", "the order's id", lambda c: c.order.id),
    Variable("OrderStatus", "order", "the order's status, in the email's language", lambda c: status_label(c.request.status, c.language)),
    Variable("PreviousStatus", "order", "the status before this change", lambda c: status_label(c.request.previous_status, c.language)),
    Variable("OrderLink", "order", "a link to the order's web page (T6), shown as its address", lambda c: Markup('<a href="{0}">{0}</a>').format(order_url(c))),
    Variable("OrderUrl", "order", "the address of the order's web page, for your own <a href>", order_url),
    Variable("ShopName", "order", "the web shop the order came from", lambda c: c.order.shop),
    Variable("CustomerName", "order", "the customer's name", lambda c: c.order.customer.name),
    Variable("CustomerEmail", "order", "the customer's email address", lambda c: str(c.order.customer.email)),
    Variable("Price", "order", "the order's price with its currency", _price),
    Variable("BudgetLimit", "order", "the budget the order was checked against", _budget),
    Variable("OrderDate", "order", "when the order was placed (order.ordered_at)", lambda c: day(c.order.ordered_at, c)),
    Variable("DueDate", "order", "when the order is due (order.due_date)", lambda c: day(c.order.due_date, c)),
    Variable("StatusDate", "order", "when the status changed", lambda c: day(c.request.changed_at or c.now, c)),
    Variable("ChangedBy", "order", "who changed the status (operator or approver)", lambda c: c.request.by),
    Variable("Note", "order", "the note the operator or approver wrote with the change", lambda c: c.request.comment),
    Variable("OperatorNote", "order", "the note an operator adds when sending a held draft (empty otherwise)", lambda c: c.operator_note),
    Variable("Audience", "order", "who the email is for: customer, operators or approvers (for {% if %})", lambda c: c.audience),
    Variable("JobCount", "order", "how many jobs the order has", lambda c: len(c.order.jobs)),
    Variable("DraftId", "draft", "the held draft's id (d1, d2, ...), what send_draft names", lambda c: _draft(c, lambda d: d.id)),
    Variable("DraftTrigger", "draft", "the email it holds (order_accepted, ...)", lambda c: _draft(c, lambda d: d.email_trigger)),
    Variable("DraftSubject", "draft", "its subject", lambda c: _draft(c, lambda d: d.subject)),
    Variable("DraftRecipients", "draft", "whom it is for", lambda c: _draft(c, lambda d: ", ".join(d.to))),
    Variable("DraftReason", "draft", "why it is held when sending failed (empty when it waits to be read)", lambda c: _draft(c, lambda d: d.reason)),
    Variable("DeskUrl", "draft", "the operators' desk in printroom web: every held draft, to read, edit and send (a signed link; empty without web.public_url)", lambda c: c.desk_url or ""),
    Variable("DraftUrl", "draft", "the held draft's own page in printroom web, to read, edit and send it (a signed link; empty without web.public_url)", lambda c: c.draft_url or ""),
    Variable("DraftCreated", "draft", "when it was made", lambda c: _draft(c, lambda d: format_datetime(d.created_at, "short", tzinfo=c.timezone, locale=c.locale))),
    Variable("Approvers", "approval", "who the approval is asked of", _approvers),
    Variable("ApprovalRequested", "approval", "when the approval was asked for", lambda c: _approval(c, lambda a: day(a.requested_at, c))),
    Variable("RemindersSent", "approval", "how many reminders the approvers have had", lambda c: _approval(c, lambda a: a.reminders_sent)),
    Variable("AnswerBy", "approval", "until when the approvers are waited for (their links expire then)", lambda c: _approval(c, lambda a: format_datetime(a.answer_by, "short", tzinfo=c.timezone, locale=c.locale) if a.answer_by else "")),
    Variable("ApproveUrl", "approval", "this approver's signed Approve link (empty unless web.public_url is set)", lambda c: _answer_url(c, "approve")),
    Variable("RejectUrl", "approval", "this approver's signed Reject link (empty unless web.public_url is set)", lambda c: _answer_url(c, "reject")),
    Variable("CostCentre", "spending", "the cost centre's name", lambda c: _spending(c, lambda s: s.cost_centre)),
    Variable("Spent", "spending", "what the cost centre has spent this period", lambda c: _spending(c, lambda s: money(s.spent, s.currency, c))),
    Variable("CostCentreBudget", "spending", "the cost centre's budget for the period", lambda c: _spending(c, lambda s: money(s.budget, s.currency, c))),
    Variable("SpentPercent", "spending", "the share of the budget spent, in percent", lambda c: _spending(c, lambda s: format_decimal(s.percent, locale=c.locale))),
    Variable("Period", "spending", "the period: 2026-11 (a month) or 2026 (a year)", lambda c: _spending(c, lambda s: s.period)),
    Variable("SmtpHost", "smtp_test", "the SMTP server used", lambda c: c.smtp["host"]),
    Variable("SmtpPort", "smtp_test", "its port", lambda c: c.smtp["port"]),
    Variable("SmtpSecurity", "smtp_test", "none, starttls or tls", lambda c: c.smtp["security"]),
    Variable("SmtpUser", "smtp_test", "the user name logged in as (empty: anonymous)", lambda c: c.smtp["user"]),
    Variable("SentAt", "smtp_test", "when the test email was sent", lambda c: format_datetime(c.now, "medium", tzinfo=c.timezone, locale=c.locale)),
)  # fmt: skip

JOB_VARIABLES: tuple[JobVariable, ...] = (
    JobVariable("JobId", "the job's id", lambda j, c: j.id),
    JobVariable("JobName", "the job's name (its id when it has none)", lambda j, c: j.name or j.id),
    JobVariable("Product", "the product ordered", lambda j, c: j.product),
    JobVariable("Quantity", "how many copies", lambda j, c: format_decimal(j.quantity, locale=c.locale) if j.quantity else ""),
)

ORDER_NAMES = frozenset(v.name for v in VARIABLES)
JOB_NAMES = frozenset(v.name for v in JOB_VARIABLES)


def scopes_of(template: str) -> tuple[Scope, ...]:
    if template == SMTP_TEST:
        return ("common", "smtp_test")
    if template == DRAFT_WAITING:
        return ("common", "order", "draft")
    if template == BUDGET_WARNING:
        return ("common", "order", "spending")
    return ("common", "order", "approval") if template.startswith("approval_") else ("common", "order")


def template_values(ctx: EmailContext, template: str) -> dict[str, Any]:
    """The values of every variable a template may use, plus `Jobs` for the per-job block."""
    scopes = scopes_of(template)
    values: dict[str, Any] = {v.name: v.value(ctx) for v in VARIABLES if v.scope in scopes}
    if ctx.request is not None:
        values["Jobs"] = [{v.name: v.value(job, ctx) for v in JOB_VARIABLES} for job in ctx.order.jobs]
    values["Language"] = ctx.language
    return values
