"""The print room's settings: one TOML file, each field overridable by a PRINTROOM_... environment variable."""

from __future__ import annotations

import os
import re
import string
import tomllib
from datetime import datetime, timedelta
from decimal import Decimal
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import StringConstraints
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, RootModel, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as EnvDecodeError

from printroom import TASK_QUEUE
from printroom.links import MIN_SECRET_BYTES, DraftLink, LinkSigner
from printroom.models import CostCentreName, DraftRules, Language, validation_problems
from printroom.statemachines.budget import APPROVAL_OVERDUE, APPROVAL_REMINDER
from printroom.statemachines.emails import BUDGET_WARNING, EMAIL_TRIGGERS
from printroom.statemachines.order import DRAFT_WAITING

DEFAULT_SETTINGS_FILE = Path("printroom.toml")


def _split_addresses(value: Any) -> Any:
    """Accept `a@x; b@y` as the print room's own screens write address lists, or a TOML list."""
    if isinstance(value, str):
        return [part.strip() for part in value.replace(",", ";").split(";") if part.strip()]
    return value


# NoDecode: from an environment variable the raw `a@x; b@y` reaches the splitter instead of a JSON parser.
AddressList = Annotated[list[EmailStr], NoDecode, BeforeValidator(_split_addresses)]


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone name such as 'Europe/Paris' or 'UTC'") from None
    return name


TimeZone = Annotated[str, AfterValidator(_time_zone)]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> Any:
    """`4h`, `30m`, `90s`, `1d` as people write them; pydantic's own forms (seconds, `PT4H`) pass through."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ascii_before_the_at(address: str) -> str:
    if not address.partition("@")[0].isascii():
        raise ValueError(f"{address!r}: a sender address must be ASCII before the @ (the domain may be international)")
    return address


SenderAddress = Annotated[EmailStr, AfterValidator(_ascii_before_the_at)]


class SenderSettings(_Section):
    """S1, S3: the print room's own address and the display name of the From field; where bounces and replies go."""

    address: SenderAddress = "printroom@example.com"
    name: str = "Print Room"
    # The envelope sender (MAIL FROM), where bounces go; unset: `address`, for every shop.
    envelope_from: SenderAddress | None = None
    reply_to: EmailStr | None = None
    # S4: copies, "a@x; b@y"; added to the customer's email of the triggers whose policy says cc = true.
    cc: AddressList = []


Security = Literal["none", "starttls", "tls"]
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}


class SmtpSettings(_Section):
    """S6-S10: the print room's mail server, how the connection is secured, and who we log in as."""

    host: str = "127.0.0.1"
    # Unset: 25, or 587 with STARTTLS, or 465 with implicit TLS.
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "none"
    # With security = "none": STARTTLS all the same when the server offers it (encrypted, certificate unchecked).
    opportunistic_tls: bool = True
    # The chain of the server's certificate is not checked (S9); its host name still is. Better: ca_file naming
    # the server's own certificate, which pins it and checks everything.
    allow_self_signed: bool = False
    ca_file: Path | None = None
    username: str | None = None
    # Never in the TOML in clear: PRINTROOM_SMTP__PASSWORD, or a file (mode 600) named here.
    password: SecretStr | None = None
    password_file: Path | None = None
    # AUTH where the connection is not encrypted sends the password in clear: refused unless this is set.
    allow_plaintext_auth: bool = False
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    # Simultaneous connections per worker: kind to the relay, and what a crashed worker can leave half-sent.
    max_connections: int = Field(default=10, ge=1, le=200)
    # How long an email is retried through passing failures (server down, 4xx, a file not there yet) before it
    # is held for an operator with the reason.
    give_up_after: Duration = Field(default=timedelta(hours=24), ge=timedelta(minutes=1), le=timedelta(days=7))

    @model_validator(mode="after")
    def _coherent(self) -> SmtpSettings:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist")
        if self.password_file is not None and not self.password_file.is_file():
            raise ValueError(f"password_file {self.password_file} does not exist")
        has_password = self.password is not None or self.password_file is not None
        if self.username and not has_password:
            raise ValueError("username is set but no password: set PRINTROOM_SMTP__PASSWORD or smtp.password_file")
        if has_password and not self.username:
            raise ValueError("a password is set but no username (smtp.username)")
        if self.security == "none" and (self.allow_self_signed or self.ca_file):
            raise ValueError("allow_self_signed and ca_file need security = 'starttls' or 'tls'")
        if self.username and self.security == "none" and not self.allow_plaintext_auth:
            raise ValueError(
                "username with security = 'none' sends the password in clear, or over opportunistic TLS that trusts "
                "any certificate; use security = 'starttls' or 'tls' (or set allow_plaintext_auth = true)"
            )
        if self.allow_self_signed and self.ca_file:
            raise ValueError("ca_file and allow_self_signed both say whom to trust; keep ca_file (it pins the certificate)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    def secret(self) -> str | None:
        """The password, read when a connection needs it, never stored in settings dumps or history."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class TemporalSettings(_Section):
    """W6: the Temporal service. Unset fields fall back to the standard TEMPORAL_* variables, then to localhost."""

    address: str | None = None
    namespace: str | None = None
    task_queue: str = TASK_QUEUE
    tls: bool | None = None
    api_key: SecretStr | None = None
    # The Temporal Web UI operators use, e.g. https://temporal.example.com: emails to operators link to the
    # order's page there. Unset: they link to the shop's order page like the customer's.
    ui_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None


MAX_IMAGE_BYTES = 1_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}


def _check_images(images: dict[str, Path]) -> dict[str, Path]:
    """Embedded images are read for every email: they must exist now, be an image, and stay small."""
    for name, path in images.items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
            raise ValueError(f"image name {name!r}: letters, digits, '-' and '_' only (templates write cid:{name})")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"image {name} = {path}: not a {'/'.join(sorted(IMAGE_SUFFIXES))} file")
        if not path.is_file():
            raise ValueError(f"image {name} = {path}: file does not exist")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"image {name} = {path}: {path.stat().st_size} bytes, over {MAX_IMAGE_BYTES} (make it smaller)")
    return images


ImageFiles = Annotated[dict[str, Path], AfterValidator(_check_images)]


class ShopSettings(_Section):
    """A web shop: where its customers see an order, the language its emails default to, its own sender (S2)."""

    order_url: str = "http://127.0.0.1:8080/orders/{order_id}"
    default_language: Language | None = None
    sender_address: SenderAddress | None = None
    sender_name: str | None = None
    # This shop's own images, e.g. its logo: they replace the print room's of the same name.
    images: ImageFiles = {}

    @model_validator(mode="after")
    def _url_has_order_id(self) -> ShopSettings:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(self.order_url) if name is not None}
        except ValueError as error:
            raise ValueError(f"order_url {self.order_url!r}: {error}; write a literal brace as {{{{ or }}}}") from None
        if "order_id" not in names:
            raise ValueError("order_url must contain {order_id}, e.g. https://shop.example.com/orders/{order_id}")
        if unknown := sorted(names - {"order_id"}):
            placeholders = ", ".join("{" + n + "}" for n in unknown)
            raise ValueError(f"order_url {self.order_url!r} has {placeholders}; only {{order_id}} is filled in")
        return self


Send = Literal["never", "always", "on_customer_request"]
AttachmentKind = Literal["document", "ticket", "preflight_report"]


class EmailPolicy(_Section):
    """E1: whether an email trigger sends, when, to whom, with which template."""

    send: Send = "always"
    to_customer: bool = False
    to_operators: bool = False
    to_approvers: bool = False
    template: str | None = None
    # T8: files attached from the document store, for each job of the order that names one.
    attachments: list[AttachmentKind] = []
    # Add the sender's Cc list to the customer's email, and/or these addresses.
    cc: bool = False
    extra_cc: AddressList = []
    # E2: the email to the customer (or approvers) is held as a draft for an operator, never sent without one.
    edit_before_send: bool = False


def _policy(send: Send, *audiences: str) -> EmailPolicy:
    return EmailPolicy(send=send, **{f"to_{a}": True for a in audiences})


DEFAULT_EMAIL_POLICIES: dict[str, EmailPolicy] = {
    "order_received": _policy("always", "customer"),
    "order_received_operator": _policy("always", "operators"),
    "order_accepted": _policy("on_customer_request", "customer"),
    "order_rejected": _policy("always", "customer"),
    "order_in_production": _policy("on_customer_request", "customer"),
    "order_completed": _policy("on_customer_request", "customer"),
    "order_shipped": _policy("always", "customer"),
    "order_cancelled": _policy("always", "customer", "operators"),
    "approval_requested": _policy("always", "approvers"),
    "approval_reminder": _policy("always", "approvers"),
    "approval_cancelled": _policy("always", "approvers"),
    APPROVAL_OVERDUE: _policy("always", "operators"),
    BUDGET_WARNING: _policy("always", "approvers"),
    "order_approved": _policy("always", "customer"),
    "order_approval_rejected": _policy("always", "customer"),
    DRAFT_WAITING: _policy("always", "operators"),
}
assert set(DEFAULT_EMAIL_POLICIES) == set(EMAIL_TRIGGERS), "every email trigger needs a default policy"


# E4: editing before sending is offered for the emails to customers and approvers, except reminders and the cost
# centres' warnings (sent on their own, with no order waiting for an operator).
OFFERS_EDITING: frozenset[str] = frozenset(
    t for t, p in DEFAULT_EMAIL_POLICIES.items()
    if (p.to_customer or p.to_approvers) and t not in (APPROVAL_REMINDER, DRAFT_WAITING, BUDGET_WARNING)
)


class EmailPolicies(RootModel[dict[str, EmailPolicy]]):
    """One policy per email trigger, written `[emails.<trigger>]`; what a file gives is merged over the default."""

    root: dict[str, EmailPolicy] = Field(default_factory=lambda: dict(DEFAULT_EMAIL_POLICIES))

    @model_validator(mode="before")
    @classmethod
    def _merge_over_defaults(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        unknown = sorted(set(given) - set(DEFAULT_EMAIL_POLICIES))
        if unknown:
            raise ValueError(f"unknown email trigger(s) {unknown} (known: {', '.join(EMAIL_TRIGGERS)})")
        merged: dict[str, Any] = {k: v.model_dump() for k, v in DEFAULT_EMAIL_POLICIES.items()}
        for trigger, policy in given.items():
            merged[trigger] = {**merged[trigger], **policy} if isinstance(policy, dict) else policy
        return merged

    @model_validator(mode="after")
    def _editing_where_offered(self) -> EmailPolicies:
        if wrong := sorted(t for t, p in self.root.items() if p.edit_before_send and t not in OFFERS_EDITING):
            raise ValueError(
                f"edit_before_send is not offered for {', '.join(wrong)} (emails to operators and reminders are "
                f"sent as they are); it is offered for: {', '.join(sorted(OFFERS_EDITING))}"
            )
        return self

    @property
    def policies(self) -> dict[str, EmailPolicy]:
        return self.root

    def for_trigger(self, email_trigger: str) -> EmailPolicy:
        return self.root[email_trigger]


class TemplateSettings(_Section):
    """T3, T7: where the print room's customised templates live, and the images its emails embed."""

    # Customised templates, same layout as the shipped ones (<lang>/<trigger>.html.j2); they win over them.
    override_dir: Path = Path("custom-templates")
    # name -> image file, embedded in the email (templates write <img src="cid:NAME">; %Logo% uses "logo").
    images: ImageFiles = {}


class DocumentSettings(_Section):
    """T8, A2: the document store that orders' file references are relative to, and how big attachments may be."""

    root: Path | None = None
    max_file_mb: float = Field(default=10, gt=0, le=100)
    max_total_mb: float = Field(default=20, gt=0, le=100)

    @model_validator(mode="after")
    def _root_exists(self) -> DocumentSettings:
        if self.root is not None and not self.root.is_dir():
            raise ValueError(f"root {self.root} is not a directory")
        return self


class DraftSettings(_Section):
    """E2-E4, S5, A1: what operators may change in a held draft, when they are reminded, and the bounds."""

    operator_may_edit_cc: bool = False
    operator_may_attach: bool = False
    # A draft waiting this long sends the operators `draft_waiting`, again after as long, at most max_reminders.
    remind_after: Duration = Field(default=timedelta(hours=4), ge=timedelta(minutes=1))
    max_reminders: int = Field(default=3, ge=0, le=50)
    max_pending: int = Field(default=20, ge=1, le=200)
    # HTML and text together; 256 KB is where Temporal starts warning about a payload's size.
    max_html_kb: int = Field(default=256, ge=16, le=256)

    def rules(self) -> DraftRules:
        return DraftRules(
            may_edit_cc=self.operator_may_edit_cc, may_attach=self.operator_may_attach, max_html_kb=self.max_html_kb,
            max_pending=self.max_pending, remind_after=self.remind_after, max_reminders=self.max_reminders,
        )  # fmt: skip


OnTimeout = Literal["escalate", "reject", "notify_operators"]


class BudgetSettings(_Section):
    """W4: how long approvers are given, how often they are reminded, and what their silence leads to."""

    remind_every: Duration = Field(default=timedelta(hours=24), ge=timedelta(minutes=1), le=timedelta(days=60))
    max_reminders: int = Field(default=3, ge=0, le=50)
    # After the last reminder and one more remind_every of silence: ask escalate_to instead (once; if they stay
    # silent too, the operators are told), reject the order, or tell the operators and keep waiting.
    on_timeout: OnTimeout = "notify_operators"
    escalate_to: AddressList = []

    @model_validator(mode="after")
    def _escalation_names_someone(self) -> BudgetSettings:
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("on_timeout = 'escalate' needs escalate_to, the approvers asked when the first stay silent")
        return self


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class CostCentreSettings(_Section):
    """PRISMAdirect's threshold warning: a cost centre's budget for a period, and who approves and is warned."""

    budget: Decimal = Field(gt=0)
    currency: Currency = "EUR"
    warn_at_percent: Decimal = Field(default=Decimal(80), gt=0, le=1000)
    period: Literal["month", "year"] = "month"
    # The approvers of its orders that name none themselves, and the recipients of its budget_warning.
    approvers: AddressList = []


# The service answers at the root of its host: a path prefix (a proxy's /printroom/) would break its own links.
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+/?$")]


class WebSettings(_Section):
    """`printroom web`: where it listens, the address emails link to, and the secret its links are signed with."""

    host: str = "127.0.0.1"
    port: int = Field(default=8377, ge=1, le=65535)
    # What approvers' and operators' links start with, e.g. https://printroom.example.com. Unset: approval emails
    # ask for a reply instead of carrying Approve/Reject buttons, and drafts carry no preview link.
    public_url: HttpUrl | None = None
    # Never in the TOML: PRINTROOM_WEB__SECRET, or a file (mode 600) named here; at least 32 bytes either way.
    secret: SecretStr | None = None
    secret_file: Path | None = None
    # A draft's preview link works this long; `printroom drafts show ORDER --link` signs a fresh one.
    draft_link_valid_for: Duration = Field(default=timedelta(days=7), ge=timedelta(minutes=5), le=timedelta(days=90))
    # The largest form an approver's browser may send (a comment is at most 2,000 characters).
    max_form_kb: int = Field(default=16, ge=4, le=256)

    @model_validator(mode="after")
    def _secret_usable(self) -> WebSettings:
        if self.secret is not None and len(self.secret.get_secret_value().encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(
                f"secret (PRINTROOM_WEB__SECRET) is shorter than {MIN_SECRET_BYTES} bytes; make one with "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if self.secret_file is not None and not self.secret_file.is_file():
            raise ValueError(f"secret_file {self.secret_file} does not exist")
        if self.public_url and self.secret is None and self.secret_file is None:
            raise ValueError("public_url is set but no secret to sign links with: set PRINTROOM_WEB__SECRET or web.secret_file")
        return self

    def signer(self) -> LinkSigner | None:
        """The links' signer, the secret read now; None when no secret is set. Raises ValueError naming the setting."""
        if self.secret is not None:
            return LinkSigner(self.secret.get_secret_value().encode("utf-8"))
        if self.secret_file is None:
            return None
        secret = self.secret_file.read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"web.secret_file {self.secret_file} holds {len(secret)} bytes; it must hold at least {MIN_SECRET_BYTES}")
        return LinkSigner(secret)

    def link(self, path: str) -> str | None:
        return f"{self.public_url.rstrip('/')}{path}" if self.public_url else None

    def draft_preview(self, signer: LinkSigner, order_id: str, message_id: str, now: datetime) -> str | None:
        """A held draft's read-only page, valid draft_link_valid_for from `now`."""
        return self.link(f"/drafts/{signer.draft(DraftLink(order_id, message_id, now + self.draft_link_valid_for))}")


class DeliverySettings(_Section):
    """Where the delivery record lives when workers run on several hosts (the directory needs a shared file system)."""

    # postgresql://user@host:5432/printroom; the password from PGPASSWORD or ~/.pgpass, never in the TOML file.
    url: Annotated[str, StringConstraints(pattern=r"^postgres(ql)?://\S+$")] | None = None


class WorkerSettings(_Section):
    """What printroom's own worker keeps in memory: the orders it holds between their events (its workflow cache).
    An order not held is rebuilt from its history when its next event comes (about 20 ms of CPU)."""

    max_cached_workflows: int = Field(default=1000, ge=0, le=100_000)
    # true: printroom's workflow modules (order, budget, cost_centre) are imported afresh into Temporal's sandbox for
    # every workflow, which checks each call made from them (about 70 KB more per order held; the tests run this
    # way). false: imported once and passed through, like printroom's helpers always are. An application's own
    # workflows in the same worker stay sandboxed either way.
    strict_sandbox: bool = False


class DevSettings(_Section):
    """The embedded default of `printroom dev`: local ports and where its files go."""

    temporal_port: int = Field(default=7233, ge=1, le=65535)
    ui_port: int = Field(default=8233, ge=1, le=65535)
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    data_dir: Path = Path("var")


class Settings(BaseSettings):
    """Everything the worker reads. Loaded by `load_settings`; invalid settings name every bad field."""

    model_config = SettingsConfigDict(env_prefix="PRINTROOM_", env_nested_delimiter="__", extra="forbid")

    sender: SenderSettings = SenderSettings()
    operators: AddressList = ["operators@example.com"]
    # T2: the languages emails are written in; `printroom templates check` wants every trigger in each.
    languages: list[Language] = Field(default=["en", "fr", "de"], min_length=1)
    default_language: Language = "en"
    # IANA time zone in which emails write dates (%StatusDate%, %OrderDate%), e.g. "Europe/Paris".
    timezone: TimeZone = "UTC"
    smtp: SmtpSettings = SmtpSettings()
    temporal: TemporalSettings = TemporalSettings()
    shops: dict[str, ShopSettings] = {"default": ShopSettings()}
    emails: EmailPolicies = EmailPolicies()
    templates: TemplateSettings = TemplateSettings()
    documents: DocumentSettings = DocumentSettings()
    drafts: DraftSettings = DraftSettings()
    budget: BudgetSettings = BudgetSettings()
    # `[cost_centres.<name>]`: orders name one with "cost_centre".
    cost_centres: dict[CostCentreName, CostCentreSettings] = {}
    # Which messages the SMTP server accepted (exactly once): shared by every worker of the print room.
    deliveries_dir: Path = Path("var/deliveries")
    # deliveries.url: the record in PostgreSQL instead (workers on several hosts).
    deliveries: DeliverySettings = DeliverySettings()
    web: WebSettings = WebSettings()
    worker: WorkerSettings = WorkerSettings()
    dev: DevSettings = DevSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content arrives as init values; environment variables win over it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _attachments_have_a_store(self) -> Settings:
        attaching = [t for t, p in self.emails.policies.items() if p.attachments]
        if attaching and self.documents.root is None:
            raise ValueError(
                f"emails.{attaching[0]}.attachments needs a document store: set documents.root "
                "(the folder that orders' file references are relative to)"
            )
        return self

    @model_validator(mode="after")
    def _languages_active(self) -> Settings:
        named = {"default_language": self.default_language}
        named |= {f"shops.{n}.default_language": s.default_language for n, s in self.shops.items() if s.default_language}
        for field, language in named.items():
            if language not in self.languages:
                raise ValueError(f"{field} {language!r} is not one of the active languages {self.languages}")
        return self

    def shop(self, name: str) -> ShopSettings:
        return self.shops.get(name) or self.shops.get("default") or ShopSettings()

    def languages_for(self, order_language: str | None, shop_name: str) -> list[str]:
        """T1: the order's language, then its shop's default, then the print room's; active languages only."""
        candidates = (order_language, self.shop(shop_name).default_language, self.default_language)
        # An order in de-CH is written in de-CH if that is active, else in de.
        with_base = [part for l in candidates if l for part in (l, l.split("-")[0])]
        return [l for l in dict.fromkeys(with_base) if l in self.languages]

    def images_for(self, shop_name: str) -> dict[str, Path]:
        return {**self.templates.images, **self.shop(shop_name).images}


class SettingsError(Exception):
    """Settings that cannot be used; the message names the file and every bad field."""


def settings_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """`--settings`, else PRINTROOM_SETTINGS, else ./printroom.toml if it exists, else none (all defaults)."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("PRINTROOM_SETTINGS"):
        return Path(env)
    return DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.exists() else None


def load_settings(explicit: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    path = settings_path(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
        url = data.get("deliveries", {}).get("url") if isinstance(data.get("deliveries"), dict) else None
        if isinstance(url, str) and (re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url) or re.search(r"(?i)[?&]password=", url)):
            raise SettingsError(
                f"settings file {path}: deliveries.url must not carry a password in the file in clear; "
                "give it in PGPASSWORD or ~/.pgpass (or the whole URL in PRINTROOM_DELIVERIES__URL)"
            )
        for section, field, variable in (("smtp", "password", "PRINTROOM_SMTP__PASSWORD"), ("web", "secret", "PRINTROOM_WEB__SECRET")):
            if isinstance(data.get(section), dict) and field in data[section]:
                raise SettingsError(
                    f"settings file {path}: {section}.{field} must not be written in the file in clear; "
                    f"set {variable} or name a file in {section}.{field}_file"
                )
    return _validated({**data, **overrides}, str(path) if path else "defaults and PRINTROOM_* variables")


SettingsSource = Settings | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve_settings(given: SettingsSource) -> Settings:
    """What an application hands printroom: settings already loaded, a mapping shaped like the TOML file, a
    file's path, or None for what `printroom worker` would read (the file, PRINTROOM_* variables, defaults)."""
    if isinstance(given, Settings):
        return given
    if isinstance(given, Mapping):
        return _validated(dict(given), "the settings given to PrintroomPlugin, and PRINTROOM_* variables")
    return load_settings(given)


def _validated(data: dict[str, Any], where: str) -> Settings:
    try:
        return Settings(**data)
    except ValidationError as error:
        problems = "\n  ".join(validation_problems(error))
        raise SettingsError(f"invalid settings ({where}):\n  {problems}") from None
    except EnvDecodeError as error:  # a PRINTROOM_* variable for a table or list that is not JSON
        raise SettingsError(f"invalid settings ({where}): {error}; give that variable as JSON") from None
