"""The public data shapes: the order JSON, the signals' payloads, and what the queries return."""

from __future__ import annotations

import hashlib
import unicodedata

from datetime import date, datetime, timedelta
from pathlib import PurePosixPath
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError, model_validator

# An ISO 639-1 code, optionally with a region: en, fr, de-CH.
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$")]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=2000)]


class _Public(BaseModel):
    """Public input: unknown keys are allowed (callers may send more than we read), types are strict."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Customer(_Public):
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    email: EmailStr
    # The customer's own choice read by the "on customer request" policy: all, none, or a list of email triggers.
    wants_status_emails: bool | list[str] = False

    def wants(self, email_trigger: str) -> bool:
        if isinstance(self.wants_status_emails, bool):
            return self.wants_status_emails
        return email_trigger in self.wants_status_emails


class Money(_Public):
    # Bounded, so that sums and percentages of a cost centre's thousands of orders stay exact decimals.
    amount: Decimal = Field(ge=0, le=Decimal("1e12"))
    currency: Currency = "EUR"


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# A cost centre's name, as the settings write it (`[cost_centres.<name>]`) and its workflow id shows it.
CostCentreName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Budget(_Public):
    """W4: the order waits for an approver when its price is over `limit`, or always with `required`."""

    limit: Decimal | None = Field(default=None, ge=0)
    # The limit's currency; unset: the price's. A price in another one is refused, never converted.
    currency: Currency | None = None
    # Unset: the approvers of the order's cost centre (settings).
    approvers: list[EmailStr] = Field(default=[], max_length=50)
    required: bool = False


def _relative_reference(value: str) -> str:
    """A file reference names a file inside the document store: relative, no `..`, no backslash tricks."""
    path = PurePosixPath(value)
    breaks = any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)  # control characters, line breaks
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value or value.endswith("/") or breaks:
        raise ValueError(f"{value!r} must be a file path relative to the document store, without '..'")
    return value


DocumentReference = Annotated[str, StringConstraints(max_length=500), AfterValidator(_relative_reference)]


class Job(_Public):
    id: NonEmpty
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    product: Annotated[str, StringConstraints(max_length=200)] = ""
    # Copies: a billion at most (no print run is larger; a number past 28 digits could not even be written out).
    quantity: int | None = Field(default=None, ge=1, le=1_000_000_000)
    # File references, relative to the configured document store; never file contents.
    document: DocumentReference | None = None
    ticket: DocumentReference | None = None
    preflight_report: DocumentReference | None = None


class Order(_Public):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\s/]+$")]
    shop: NonEmpty = "default"
    language: Language | None = None
    customer: Customer
    price: Money | None = None
    budget: Budget | None = None
    jobs: list[Job] = Field(min_length=1)
    # When the customer ordered, and when it is due: shown in emails (%OrderDate%, %DueDate%) when given.
    ordered_at: datetime | None = None
    due_date: date | None = None
    # A cost centre of the settings: its approvers answer when the order names none, its spending counts the order.
    cost_centre: CostCentreName | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> Order:
        budget, price = self.budget, self.price
        if budget and budget.currency and price and budget.currency != price.currency:
            raise ValueError(
                f"the price is in {price.currency} and budget.currency is {budget.currency}: printroom never converts "
                "currencies; give the budget in the price's currency"
            )
        if budget and budget.limit is None and not budget.required:
            raise ValueError("budget needs a limit, or required: true for an approval whatever the price")
        return self

    @property
    def needs_approval(self) -> bool:
        """Over its budget's limit, or an approval asked for whatever the price."""
        budget, price = self.budget, self.price
        if budget is None:
            return False
        over = price is not None and budget.limit is not None and price.amount > budget.limit
        return budget.required or over


class ChangeStatus(_Public):
    """Signal `change_status`: an operator moves the order."""

    trigger: NonEmpty
    by: Annotated[str, StringConstraints(max_length=200)] = ""
    comment: Text = ""


class ApprovalDecision(_Public):
    """Signals `approve` and `reject`: an approver's answer on an order over its budget."""

    by: Annotated[str, StringConstraints(max_length=200)] = ""
    comment: Text = ""


class AskAgain(_Public):
    """Signal `ask_again` on `budget-<order id>` (or on the order, which relays it): an operator has the approval
    read the settings again and ask the approvers they name now, e.g. once a missing cost centre is added."""

    by: Annotated[str, StringConstraints(max_length=200)] = ""
    comment: Text = ""


class Decide(_Public):
    """Update `decide` on `budget-<order id>`: an approver's answer, for a client that wants to know how it went."""

    decision: Literal["approve", "reject"]
    by: Annotated[str, StringConstraints(max_length=254)] = ""  # an address is at most 254 characters
    comment: Text = ""


Audience = Literal["customer", "operators", "approvers"]
# Audiences whose emails an operator may hold and edit before they go (E2): never the operators' own copies.
DRAFTABLE_AUDIENCES: tuple[Audience, ...] = ("customer", "approvers")


class SendDraft(_Public):
    """Signal `send_draft` and update `edit_and_send`: send a held draft, with the operator's edits. Every field
    but `draft_id` may be left out (the draft's own is kept); `draft_id` too, when exactly one draft waits."""

    draft_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    subject: NonEmpty | None = None
    # Checked against the draft's own limit (drafts.max_html_kb) by the workflow; this bound only stops abuse.
    html: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)] | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)] | None = None
    # Placed where the template shows %OperatorNote% (the shipped ones: where a status change's comment shows).
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] | None = None
    cc: list[EmailStr] | None = Field(default=None, max_length=20)
    # Only with drafts.operator_may_edit_to: a mistyped address corrected.
    to: list[EmailStr] | None = Field(default=None, min_length=1, max_length=20)
    attachments: list[DocumentReference] | None = Field(default=None, max_length=20)
    by: Annotated[str, StringConstraints(max_length=200)] = ""


class EmailBounced(_Public):
    """Signal `email_bounced`: the print room's mailbox got a delivery status notification (RFC 3464) for one of
    the order's emails. Only ever holds a draft for an operator: a bounce names no address printroom would write to."""

    message_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=998)]
    # As the DSN names it (Final-Recipient); not checked as an address: a bounce may quote a broken one.
    recipient: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
    status: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[245]\.\d{1,3}\.\d{1,3}$")]
    permanent: bool
    diagnostic: Text = ""

    @property
    def acted_on(self) -> bool:
        """A failure for good (5.x.x, said permanent): a copy is held for an operator. 4.x.x (delayed) and 2.x.x
        (a delivery report) are recorded only."""
        return self.permanent and self.status.startswith("5")


class Bounce(BaseModel):
    """A bounce the order took for one of its own emails (query `state`): what came back, and what was done."""

    message_id: str
    email_trigger: str
    audience: Audience
    recipient: str
    status: str
    permanent: bool
    diagnostic: str = ""
    at: datetime
    # What the order did: "a copy held for an operator as draft d2", "recorded only: not a failure for good (4.2.2, temporary)", ...
    outcome: str = ""


class AddressCorrection(BaseModel):
    """The customer's address corrected by an operator sending a bounced email again: later emails go to `corrected`."""

    original: str
    corrected: str
    draft_id: str
    by: str = ""
    at: datetime



class DiscardDraft(_Public):
    """Signal `discard_draft`: the held email is not sent; the reason is kept in the order's changes."""

    draft_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    reason: Text = ""
    by: Annotated[str, StringConstraints(max_length=200)] = ""


class DraftRules(BaseModel):
    """The settings a draft was made under, carried with it: the workflow never reads settings itself."""

    may_edit_cc: bool = False
    may_edit_to: bool = False
    may_attach: bool = False
    max_html_kb: int = 256
    max_pending: int = 20
    remind_after: timedelta = timedelta(hours=4)
    max_reminders: int = 3


class DraftContent(BaseModel):
    """An email rendered and held for an operator instead of sent (E2), or held because sending failed for good."""

    email_trigger: str
    audience: Audience
    sender: str  # the From field as it will be written, e.g. "Salle d'impression <printroom@example.com>"
    to: list[str]
    cc: list[str] = []
    subject: str = ""
    text: str = ""
    html: str = ""
    # Document-store references of the files it will carry (A2: read when the email is built, never carried here).
    attachments: list[str] = []
    language: str = ""
    message_id: str
    # In-Reply-To/References: the thread of the order's emails to this audience.
    references: list[str] = []
    # Why it is held when something failed (empty when the trigger is simply set to edit_before_send).
    reason: str = ""
    rules: DraftRules = DraftRules()
    # The order's shop: its images, when the draft is written out as a file.
    shop: str = "default"
    # A signed, expiring link to `printroom web`'s read-only view of it (set when web.public_url is).
    preview_url: str | None = None
    # Who the order is for, as the operators' desk lists it (drafts held before it was kept: empty).
    customer: str = ""
    # A copy of an email that bounced (the reason says how): its To may be corrected whatever
    # drafts.operator_may_edit_to says, and the order keeps the corrected address.
    from_bounce: bool = False

    @property
    def may_edit_to(self) -> bool:
        return self.rules.may_edit_to or self.from_bounce

    @property
    def body_bytes(self) -> int:
        return len(self.html.encode("utf-8")) + len(self.text.encode("utf-8"))

    def without_body(self, why: str) -> Any:
        """Held without its HTML and text (they would make the order's history too big): rendered when sent."""
        reason = f"{self.reason}; {why}" if self.reason else why
        return self.model_copy(update={"html": "", "text": "", "reason": reason + "; it is rendered again when sent"})


class Draft(DraftContent):
    """A held draft as the `drafts` query shows it."""

    id: str
    created_at: datetime
    reminders_sent: int = 0
    reminded_at: datetime | None = None
    # The last attempt to send it failed (SMTP down, a file missing): it is still held, nothing was sent.
    last_error: str = ""
    # Who asked for that attempt, and when: the operators' desk says who last touched the draft.
    last_tried_by: str = ""
    last_tried_at: datetime | None = None


class DraftSummary(BaseModel):
    """A pending draft in the `state` query: enough to recognise it; `drafts` has it in full."""

    id: str
    email_trigger: str
    audience: Audience
    to: list[str]
    subject: str
    created_at: datetime
    reason: str = ""
    last_error: str = ""
    # What the draft_waiting email links its editor by (drafts summed up before it was kept: empty, no link).
    message_id: str = ""


class DraftSent(BaseModel):
    """The answer of `edit_and_send`: which email went out, to whom."""

    draft_id: str
    message_id: str
    to: list[str]
    cc: list[str]
    subject: str
    attachments: list[str] = []

# The activities' registered names: the workflow calls them by name so its sandbox never imports SMTP or Jinja.
# Prefixed: they are registered on the same worker as an application's own activities.
SEND_STATUS_EMAIL = "printroom.send_status_email"
SEND_STATUS_EMAILS = "printroom.send_status_emails"
SEND_DRAFT = "printroom.send_draft"
DRAFT_BOUNCED = "printroom.draft_bounced"


class ApprovalProgress(BaseModel):
    requested_at: datetime
    reminders_sent: int = 0
    # Who the approval was asked of (for the operators' approval_overdue).
    approvers: list[str] = []
    # When budget.on_timeout acts if the approvers of now stay silent (shown to them as "please answer by").
    answer_by: datetime | None = None
    # When their answer links stop working: at answer_by if on_timeout then ends their say (reject, escalate),
    # later if the approval keeps waiting for them (the operators told).
    links_expire: datetime | None = None
    # Which asking this is: 1, then one more for each escalation and each ask_again. A held draft of an earlier
    # round is no longer needed.
    round: int = 1


class Spending(BaseModel):
    """Query `spending` on `cost-centre-<name>`: the current period's spending against the cost centre's budget."""

    cost_centre: str
    period: str  # "2026-11" or "2026"
    spent: Decimal = Decimal(0)
    budget: Decimal
    currency: str
    warn_at_percent: Decimal
    orders: int = 0
    # Orders counted in this period and then cancelled or rejected: their price is off `spent`, not in `orders`.
    taken_back: int = 0
    warned_at: datetime | None = None
    # Orders whose price could not be counted (another currency), with the reason.
    refused: list[str] = []

    @property
    def percent(self) -> Decimal:
        if not self.budget:
            return Decimal(0)
        share = self.spent * 100 / self.budget
        try:
            return share.quantize(Decimal("0.1"))
        except InvalidOperation:  # past 28 digits (a budget of a millionth): shown unrounded, never a crash
            return share


class StatusEmailRequest(BaseModel):
    """Activity input: which email trigger fired for which order; small data only, never a rendered body."""

    order: Order
    email_trigger: str
    # Counts how many times this email trigger fired for the order; part of the deterministic Message-ID.
    occurrence: int = 1
    # The run it belongs to (the workflow's first execution run id): an order started again under the same id
    # gets Message-IDs of its own, so the delivery record never takes its emails for the earlier run's.
    run: str = ""
    status: str
    previous_status: str | None = None
    by: str = ""
    comment: str = ""
    # When the status changed (workflow time): %StatusDate%. None in requests recorded before it existed.
    changed_at: datetime | None = None
    # Only these audiences (a retry after some were already sent); None: everyone the policy names.
    audiences: list[Audience] | None = None
    # Of these audiences, only these recipients (a retry for those a 4xx put off); an audience not named: all.
    recipients: dict[Audience, list[str]] | None = None
    # For `draft_waiting`: the draft the operators are reminded of.
    waiting_draft: DraftSummary | None = None
    # The approvers to write to, when not the order's own (its cost centre's, or those an escalation asks).
    approvers: list[str] | None = None
    # For the approval's emails: how long it has waited, the reminders sent so far.
    approval: ApprovalProgress | None = None
    # For `budget_warning`: the cost centre's spending that crossed its threshold.
    spending: Spending | None = None
    # Retried because the server could not be reached, other emails waiting behind it: a failure of the email's
    # own (a file not there yet) is handed back instead of retried, so that they go on.
    waiting_for_server: bool = False


class SentEmail(BaseModel):
    email_trigger: str
    audience: Audience
    to: list[str]
    cc: list[str] = []
    subject: str
    message_id: str
    sent_at: datetime
    # The file names attached from the document store (T8).
    attachments: list[str] = []


class FailedDelivery(BaseModel):
    audience: Audience
    error: str


class StatusEmailResult(BaseModel):
    sent: list[SentEmail] = []
    # Who was not emailed and why, refused recipients, retries that found the email already sent: for operators.
    notes: list[str] = []
    # Audiences that a person has to fix (5xx, bad address): not retried.
    failed: list[FailedDelivery] = []
    # Audiences that met a passing failure after others were sent: to be asked for again, alone.
    retry: list[Audience] = []
    retry_reason: str = ""
    # The retry waits for the server (unreachable, busy): the emails after it would fail alike and wait behind
    # it. False: a reason of the email's own (a file not there yet, a 4xx for one recipient) holds up nothing else.
    retry_waits_for_server: bool = False
    # Of the audiences in `retry`, the recipients to ask for again (a 4xx for some while others took it).
    retry_recipients: dict[Audience, list[str]] = {}
    # Emails held for an operator instead of sent: edit_before_send, or a failure a person has to fix.
    drafts: list[DraftContent] = []
    # bounces.keep_orders_open, in seconds, when a mailbox is watched for bounces and an email went to the customer:
    # how long the order stays open once done, so that a bounce of its last email still finds it. 0: it closes.
    keep_open_for_bounces: int = 0


class StatusEmailBatch(BaseModel):
    """The first attempt for every email queued together: one local activity, one history marker."""

    requests: list[StatusEmailRequest]


class StatusEmailBatchResult(BaseModel):
    # One result per request, in order; a passing failure shows as `retry`, never as an exception.
    results: list[StatusEmailResult]


class SendDraftRequest(BaseModel):
    """Activity input: send a held draft with the operator's edits (the order rides along in `request`)."""

    request: StatusEmailRequest
    draft: Draft
    edits: SendDraft


class BouncedDraftRequest(BaseModel):
    """Activity input: hold a copy of a customer's email that bounced. `to` is what the email was sent to (the
    order's address then), never an address the bounce names."""

    request: StatusEmailRequest
    to: list[str]
    cc: list[str] = []
    reason: str


class StatusChange(BaseModel):
    trigger: str
    source: str
    dest: str
    by: str
    comment: str
    at: datetime


class RefusedRequest(BaseModel):
    """A signal or input that was not applied, with the reason; shown by the `state` query and logged."""

    kind: str
    reason: str
    payload: str
    at: datetime
    # The refusal's name and values, for a page that says it in its own language (`reason` stays English).
    words: str = ""
    values: dict[str, str] = {}


class PendingEmail(BaseModel):
    """Queued, or being sent (and retried while the SMTP server is unreachable: see the Web UI's pending activity)."""

    email_trigger: str
    status: Literal["queued", "sending"]
    # Why the last attempt failed while the email is retried (e.g. the SMTP server is down).
    last_error: str = ""


class FailedEmail(BaseModel):
    email_trigger: str
    error: str
    at: datetime


class OrderState(BaseModel):
    """Query `state`: everything an operator asks about an order."""

    order_id: str
    status: str
    allowed_triggers: list[str]
    changes: list[StatusChange]
    emails_sent: list[SentEmail]
    emails_pending: list[PendingEmail]
    emails_failed: list[FailedEmail]
    # What the sending said besides: recipients refused by the server, emails not sent by policy, duplicates.
    email_notes: list[str] = []
    # Emails held for an operator; the `drafts` query has them in full.
    drafts_pending: list[DraftSummary] = []
    refused: list[RefusedRequest]
    # The budget approval's standing: waiting (its workflow named), how it ended, or why the order waits for an
    # approval that ended without a decision (cancelled from outside: ask_again starts a new one). Empty: none.
    approval: str = ""
    # Bounces of the order's own emails (the last 100), and the customer's address as operators corrected it
    # after one (original and corrected; later emails go to the last corrected).
    bounces: list[Bounce] = []
    address_corrections: list[AddressCorrection] = []


def _path_part(part: object) -> str:
    """A key as written, unless it could not be read in one line of a path (a space, a dot, a newline): quoted."""
    text = str(part)
    plain = bool(text) and text.isprintable() and not any(c.isspace() or c == "." for c in text)
    return text if plain or not isinstance(part, str) else repr(text)


def validation_problems(error: ValidationError) -> list[str]:
    """One line per bad field, named by its JSON path, e.g. `customer.email: value is not a valid email address`."""
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join(_path_part(part) for part in item["loc"]) or "(the whole payload)"
        problems.append(f"{path}: {item['msg']}")
    return problems


# Budget approval (W4): what the approval workflow asks the settings, what it answers, and what it shows.
PLAN_APPROVAL = "printroom.plan_approval"
FETCH_HANDED_DRAFTS = "printroom.fetch_handed_drafts"
CONFIRM_ORDER_CANCELLED = "printroom.confirm_order_cancelled"
# On `budget-<order id>`: the drafts it handed to its order, by Message-ID (what the order holds, never the signal).
HANDED_DRAFTS_QUERY = "printroom.handed_drafts"
RECORD_SPENDING = "printroom.record_spending"
TAKE_BACK_SPENDING = "printroom.take_back_spending"
BUDGET_WORKFLOW = "BudgetApprovalWorkflow"
COST_CENTRE_WORKFLOW = "CostCentreWorkflow"
ADD_SPENDING = "add_spending"
# On `cost-centre-<name>`: an order counted there and then cancelled or rejected; its price comes off.
TAKE_BACK = "take_back_spending"
# The same two as updates, answered by the cost centre itself: what printroom's orders use, so that an order says
# "counted" only once the cost centre has counted it.
COUNT_ORDER = "count_order"
TAKE_BACK_ORDER = "take_back_order"
# From an approval to its order, for the drafts its emails became: internal, prefixed like the activities.
HOLD_DRAFTS = "printroom.hold_drafts"
# From an order to its approval: the order was cancelled, the approvers are told (a bare cancel tells nobody).
ORDER_CANCELLED = "printroom.order_cancelled"


def order_workflow_id(order_id: str) -> str:
    """`order-<order id>`, the convention `temporal workflow start` is documented with (whatever the shop)."""
    return f"order-{order_id}"


def budget_workflow_id(order_id: str) -> str:
    return f"budget-{order_id}"


def cost_centre_workflow_id(name: str) -> str:
    return f"cost-centre-{name}"


class ApprovalPlan(BaseModel):
    """What the settings say about one order's approval, read once by an activity (the workflow reads no settings)."""

    approvers: list[str]
    # Where the approvers come from: "the order" or "cost centre <name>".
    approvers_from: str
    remind_every: timedelta
    max_reminders: int
    on_timeout: Literal["escalate", "reject", "notify_operators"]
    escalate_to: list[str] = []
    # Something the operators must fix (an unknown cost centre, nobody to ask); said in the approval's state.
    problem: str = ""


class ApprovalOutcome(BaseModel):
    """How an approval ended: what the order moves on (and `decide` answers)."""

    status: Literal["requested", "escalated", "approved", "rejected", "expired", "cancelled"]
    by: str = ""
    comment: str = ""
    at: datetime | None = None
    # Cancelled by someone other than the order (Request Cancellation on `budget-<id>`): the order still waits.
    from_outside: bool = False


class ApprovalState(BaseModel):
    """Query `state` on `budget-<order id>`."""

    order_id: str
    status: str
    approvers: list[str]
    approvers_from: str = ""
    requested_at: datetime | None = None
    reminders_sent: int = 0
    escalated_to: list[str] = []
    decision: ApprovalOutcome | None = None
    problem: str = ""
    refused: list[RefusedRequest] = []
    # Until when the approvers of now are waited for; the order they decide on (for the approval page).
    answer_by: datetime | None = None
    order: Order | None = None
    emails_sent: list[SentEmail] = []
    emails_failed: list[FailedEmail] = []
    email_notes: list[str] = []


class HeldDrafts(BaseModel):
    """From an approval to its order: emails held for an operator, who finds them on the order."""

    request: StatusEmailRequest
    drafts: list[DraftContent]


# Memo a printroom client (one with PrintroomPlugin) writes on each order it starts: what its settings decide at
# the start, so that the order's first task runs no activity to ask the worker. Visible in the Web UI's Memo.
ORDER_START_MEMO = "printroom.start"


class OrderStart(BaseModel):
    """Memo `printroom.start`: the order's start emails that the starting client's settings turn off
    (`send = "never"`). An order started without it (the `temporal` CLI, a client without the plugin) asks the
    worker's settings, as every later email does."""

    emails_off: list[str] = Field(default=[], max_length=10)


class OrderRun(BaseModel):
    """Activity input: one run of an order's workflow (an approval asking its own order)."""

    workflow_id: str
    run_id: str


class Confirmed(BaseModel):
    """Activity output: whether what was claimed holds, and why not."""

    yes: bool
    why_not: str = ""


class DraftsHanded(BaseModel):
    """Signal `printroom.hold_drafts`, from an approval to its order: a doorbell naming the drafts it holds for an
    operator. The order fetches them from the approval itself: nothing a signal carries is believed."""

    message_ids: list[Annotated[str, StringConstraints(max_length=300)]] = Field(min_length=1, max_length=50)


class FetchHandedDrafts(BaseModel):
    """Activity input: the order asks its approval (that very run) for the drafts the doorbell named."""

    order_id: str
    approval_run_id: str
    message_ids: list[str]


class HandedDrafts(BaseModel):
    """What the approval holds under those Message-IDs, checked against whom it asked and the settings; or why not."""

    held: HeldDrafts | None = None
    why_not: str = ""


class CostCentreTerms(BaseModel):
    """A cost centre's settings, as its workflow needs them."""

    name: str
    budget: Decimal
    currency: str
    warn_at_percent: Decimal
    period: Literal["month", "year"]
    approvers: list[str] = []
    timezone: str = "UTC"


class SpendingRecord(BaseModel):
    """Activity input and signal `add_spending` on `cost-centre-<name>`: an order's price counted once per order.
    The cost centre's settings ride along, so a changed budget applies from the next order on. On
    `take_back_spending`, the same record takes a counted order's price back off."""

    order: Order
    settings: CostCentreTerms | None = None
    # The period it counts in (or is taken back in), as the activity read the clock in the print room's time
    # zone: "2026-11", "2026".
    period: Annotated[str, StringConstraints(pattern=r"^(\d{4}(-(0[1-9]|1[0-2]))?)?$")] = ""
    # Set by the signal it came on (carried over with a run's pending records), not by the sender.
    take_back: bool = False
    # The order's run (its first execution run id): an order started again under the same id counts anew.
    run: str = ""

    @property
    def key(self) -> str:
        """What the cost centre counts once: the order, in one of its runs."""
        return spending_key(self.order.id, self.run)


def spending_key(order_id: str, run: str) -> str:
    """`PO-1001`, or `PO-1001#<10 hex digits of its run>` for an order counted by one run of its workflow."""
    return f"{order_id}#{hashlib.sha256(run.encode('utf-8')).hexdigest()[:10]}" if run else order_id


class CostCentreBook(BaseModel):
    """What a cost centre's workflow carries over to its next run (continue-as-new)."""

    terms: CostCentreTerms
    spending: Spending | None = None
    # The orders counted lately (the last few thousand), so a record sent twice is counted once.
    counted: list[str] = []
    # What each order counted in the current period added: what a take-back takes off (never the price it
    # carries). Emptied when a new period starts: a closed period is not reopened.
    this_period: dict[str, Decimal] = {}
    # The orders taken back lately (cancelled or rejected after counting), so they are taken back once.
    taken_back: list[str] = []
    # Records that arrived while the last run was ending: counted first by the next.
    pending: list[SpendingRecord] = []
    # Warnings the last run had not sent yet (its mail server down): sent by the next, with the same Message-IDs.
    emails: list[StatusEmailRequest] = []
    # The last run's refusals, still shown by `spending`.
    refused: list[RefusedRequest] = []
    # A run continues as new past this many history events (or when the server suggests it).
    history_limit: int = Field(default=2000, ge=50)


class SpendingAnswer(BaseModel):
    """What counting (or taking back) an order's spending said: `ok` when the cost centre did it (or had done it
    for this run already), and why not otherwise."""

    ok: bool
    note: str = ""


# The bounce watcher (issue 24): one workflow reading the print room's mailbox through one activity a poll.
BOUNCE_WATCH_WORKFLOW = "BounceWatchWorkflow"
BOUNCE_WATCH_ID = "printroom-bounces"
EMAIL_BOUNCED = "email_bounced"
POLL_BOUNCES = "printroom.poll_bounces"


class BounceCounts(BaseModel):
    """What the watcher has done since it first started (carried over continue-as-new), by message."""

    matched: int = 0  # bounces whose order got `email_bounced`, then moved to processed (or deleted)
    unmatched: int = 0  # bounces naming no order of ours (or one that does not exist): moved aside
    ignored: int = 0  # auto-replies and other mail: left where they are, marked so as not to be read again
    malformed: int = 0  # messages no parser could read: moved aside
    signals: int = 0  # `email_bounced` signals sent (a bounce names one or several recipients)

    def plus(self, other: BounceCounts) -> BounceCounts:
        return BounceCounts(**{name: getattr(self, name) + getattr(other, name) for name in BounceCounts.model_fields})


class BouncePoll(BaseModel):
    """One poll of the mailbox (the activity reads the settings: the workflow holds none)."""

    poll: int


class BouncePollResult(BaseModel):
    """What one poll did; small whatever the mailbox holds (counts, never messages)."""

    counts: BounceCounts = BounceCounts()
    # More messages waiting than one batch: the next poll follows at once.
    more: bool = False
    # The mailbox could not be read (unreachable, login refused, a folder missing): what to do about it.
    error: str | None = None
    # bounces.poll_every as the worker's settings say it now; None: no [bounces] any more (the watcher ends).
    poll_every: timedelta | None = None
    mailbox: str = ""


class BounceWatch(BaseModel):
    """The watcher's input, and what a run carries to the next (continue-as-new)."""

    counts: BounceCounts = BounceCounts()
    polls: int = 0
    poll_every: timedelta = timedelta(minutes=1)
    polls_per_run: int = Field(default=500, ge=1)
    failures_in_a_row: int = 0
    # Polls in a row answered by a worker whose settings have no [bounces]: the watcher ends at the third (one
    # worker of a rolling deploy, or a second worker with other settings, does not stop it).
    unset_in_a_row: int = 0
    last_error: str | None = None
    last_poll: datetime | None = None
    mailbox: str = ""


class BounceWatchState(BounceWatch):
    """Query `state` of `printroom-bounces`: the counts, the last poll and the last error, the next poll."""

    next_poll: datetime | None = None
    stopped: str | None = None
