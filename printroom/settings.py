"""The print room's settings: one TOML file, each field overridable by a PRINTROOM_... environment variable."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import ssl
import stat
import string
import tomllib
from datetime import datetime, timedelta
from decimal import Decimal
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import StringConstraints
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, RootModel, SecretStr, ValidationError, ValidationInfo
from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as EnvDecodeError

from printroom import TASK_QUEUE
from printroom.links import MIN_SECRET_BYTES, DeskLink, DraftLink, LinkSigner
from printroom.models import CostCentreName, DraftRules, Language, validation_problems
from printroom.statemachines.budget import APPROVAL_OVERDUE, APPROVAL_REMINDER
from printroom.statemachines.emails import BUDGET_WARNING, EMAIL_TRIGGERS
from printroom.statemachines.order import DRAFT_WAITING

if TYPE_CHECKING:
    from printroom.codec import EncryptionCodec, KeyRing

DEFAULT_SETTINGS_FILE = Path("printroom.toml")


log = logging.getLogger("printroom.settings")
T = TypeVar("T")


def _secret_file(path: Path, field: str) -> bytes:
    """A secret or password file as the worker and `printroom web` will read it: checked now, so that settings check
    says what they would trip on. Readable by group or others: a warning with the chmod to run."""
    try:
        mode, content = stat.S_IMODE(path.stat().st_mode), path.read_bytes().strip()
    except FileNotFoundError:
        raise ValueError(f"{field} {path} does not exist") from None
    except OSError as error:
        raise ValueError(f"{field} {path} cannot be read ({error.strerror}); let the worker's user read it") from None
    if mode & 0o044:
        log.warning("%s %s is readable by group or others (mode %03o): run `chmod 600 %s`", field, path, mode, path)
    return content


def _utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


def _said(problems: list[str], check: Callable[[], T]) -> T | None:
    """A check's result, or None with its problem added to those a validator says at once."""
    try:
        return check()
    except ValueError as error:
        problems.append(str(error))
        return None


def _certificates(path: Path) -> None:
    """smtp.ca_file as TLS will load it: PEM certificates (a CA's, or the server's own)."""
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"ca_file {path} holds no certificate TLS can use ({getattr(error, 'reason', None) or error}); give the CA's "
            "or the server's certificate in PEM (-----BEGIN CERTIFICATE-----)"
        ) from None


def _fingerprint(value: str) -> str:
    """A SHA-256 as tools print it (`AB:CD:...`, any case, colons or not, after openssl's `sha256 Fingerprint=` or a
    `sha256:`): kept as `AB:CD:...`."""
    digits = re.sub(r"[\s:]", "", re.sub(r"^\s*sha-?256(\s+fingerprint\s*=|:)", "", value, flags=re.IGNORECASE)).upper()
    if not re.fullmatch(r"[0-9A-F]{64}", digits):
        raise ValueError(f"{value!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed), as `printroom smtp test` or `openssl x509 -noout -fingerprint -sha256` prints it")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


Fingerprint = Annotated[str, AfterValidator(_fingerprint)]
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
    # The SHA-256 of the server's certificate (`printroom smtp test` prints it): checked on every connection, which
    # then trusts that certificate alone, whatever its chain. What pins a self-signed relay besides ca_file.
    tls_fingerprint: Fingerprint | None = None
    username: str | None = None
    # Never in the TOML in clear: PRINTROOM_SMTP__PASSWORD, or a file (mode 600) named here.
    password: SecretStr | None = None
    password_file: Path | None = None
    # AUTH where the connection is not encrypted sends the password in clear: refused unless this is set.
    allow_plaintext_auth: bool = False
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    # Simultaneous connections per worker: kind to the relay, and what a crashed worker can leave half-sent.
    max_connections: int = Field(default=10, ge=1, le=200)
    # Connections kept open between emails (at most max_connections, RSET between emails): one TCP, TLS and AUTH
    # handshake for many emails. Closed after idle_seconds unused, and after max_messages_per_connection emails
    # (relays limit it; a 421 closes one sooner). max_messages_per_connection = 1 turns reuse off.
    idle_seconds: float = Field(default=30, ge=0, le=3600)
    max_messages_per_connection: int = Field(default=100, ge=1, le=100_000)
    # How long an email is retried through passing failures (server down, 4xx, a file not there yet) before it
    # is held for an operator with the reason.
    give_up_after: Duration = Field(default=timedelta(hours=24), ge=timedelta(minutes=1), le=timedelta(days=7))

    @model_validator(mode="after")
    def _coherent(self) -> SmtpSettings:
        problems: list[str] = []  # every one said at once
        if self.ca_file is not None and not self.ca_file.is_file():
            problems.append(f"ca_file {self.ca_file} does not exist")
        elif (ca_file := self.ca_file) is not None:
            _said(problems, lambda: _certificates(ca_file))
        _password_file_problems(problems, self.password_file)
        has_password = self.password is not None or self.password_file is not None
        if self.username and not has_password:
            problems.append("username is set but no password: set PRINTROOM_SMTP__PASSWORD or smtp.password_file")
        if has_password and not self.username:
            problems.append("a password is set but no username (smtp.username)")
        if self.security == "none" and (self.allow_self_signed or self.ca_file):
            problems.append("allow_self_signed and ca_file need security = 'starttls' or 'tls'")
        if self.username and self.security == "none" and not self.allow_plaintext_auth:
            problems.append(
                "username with security = 'none' sends the password in clear, or over opportunistic TLS that trusts "
                "any certificate; use security = 'starttls' or 'tls' (or set allow_plaintext_auth = true)"
            )
        if self.allow_self_signed and self.ca_file:
            problems.append("ca_file and allow_self_signed both say whom to trust; keep ca_file (it pins the certificate)")
        if self.tls_fingerprint and self.security == "none":
            problems.append("tls_fingerprint needs security = 'starttls' or 'tls'")
        if self.username and self.allow_self_signed and not self.tls_fingerprint:
            problems.append(
                "username with allow_self_signed would give the password to anyone between us and the server (any "
                "certificate naming the host is taken); pin the server's certificate: smtp.ca_file = that certificate, "
                "or smtp.tls_fingerprint = its SHA-256, which `printroom smtp test` prints (run it without smtp.username)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def reuses_connections(self) -> bool:
        """False: one connection per email, as a relay that wants no session kept open is served."""
        return self.idle_seconds > 0 and self.max_messages_per_connection > 1

    def secret(self) -> str | None:
        """The password, read when a connection needs it, never stored in settings dumps or history."""
        return _password(self.password, self.password_file)


def _password_file_problems(problems: list[str], password_file: Path | None) -> None:
    """A password file as a connection will read it (UTF-8, not empty), said now with the other problems."""
    if password_file is None:
        return
    content = _said(problems, lambda: _secret_file(password_file, "password_file"))
    if content == b"":
        problems.append(f"password_file {password_file} is empty; write the password in it")
    elif isinstance(content, bytes) and not _utf8(content):  # the worker reads it as UTF-8 text
        problems.append(f"password_file {password_file} is not UTF-8 text; write the password in it as UTF-8")


def _password(password: SecretStr | None, password_file: Path | None) -> str | None:
    if password is not None:
        return password.get_secret_value()
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").strip()
    return None


IMAP_PORTS: dict[str, int] = {"none": 143, "starttls": 143, "tls": 993}


class BounceSettings(_Section):
    """Issue 24: the mailbox where bounces of the print room's emails arrive (the envelope sender's), read over
    IMAP by the bounce watcher. Absent: no watcher runs."""

    host: str
    # Unset: 993 with implicit TLS, else 143.
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "tls"
    # The CA (or the server's own certificate) that the IMAP server's certificate is checked against; unset: the
    # system's CAs.
    ca_file: Path | None = None
    username: str = Field(min_length=1)
    # Never in the TOML in clear: PRINTROOM_BOUNCES__PASSWORD, or a file (mode 600) named here.
    password: SecretStr | None = None
    password_file: Path | None = None
    # LOGIN without TLS sends the password in clear: only to a loopback server unless this is set.
    allow_plaintext_auth: bool = False
    folder: str = Field(default="INBOX", min_length=1)
    # Where a bounce goes once its order has it: "folder:<name>" (made if missing) or "delete".
    processed: Annotated[str, StringConstraints(pattern=r"^(delete|folder:.+)$")] = "folder:Printroom/Processed"
    # Bounces no order of ours matches, and messages no parser could read: moved here, never deleted.
    unmatched_folder: str = Field(default="Printroom/Unmatched", min_length=1)
    poll_every: Duration = Field(default=timedelta(minutes=1), ge=timedelta(seconds=1), le=timedelta(days=1))
    # An order done (shipped, rejected, cancelled) stays open this long after its last email to the customer, so
    # that a bounce of that email still finds it; 0 closes it at once (such a bounce is then moved aside, unmatched).
    keep_orders_open: Duration = Field(default=timedelta(days=3), ge=timedelta(0), le=timedelta(days=60))
    # Messages read per poll: a poll's work stays short and bounded; a full mailbox is emptied over several polls.
    batch_size: int = Field(default=200, ge=1, le=5000)
    # What is fetched of each message: the report and the returned headers come first.
    read_bytes: int = Field(default=256 * 1024, ge=4096, le=10 * 1024 * 1024)
    # The watcher starts afresh (continue-as-new) after this many polls: its history stays small.
    polls_per_run: int = Field(default=500, ge=1, le=10_000)
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @model_validator(mode="after")
    def _coherent(self) -> BounceSettings:
        problems: list[str] = []
        if self.ca_file is not None and not self.ca_file.is_file():
            problems.append(f"ca_file {self.ca_file} does not exist")
        elif (ca_file := self.ca_file) is not None:
            _said(problems, lambda: _certificates(ca_file))
        _password_file_problems(problems, self.password_file)
        if self.password is None and self.password_file is None:
            problems.append("no password: set PRINTROOM_BOUNCES__PASSWORD or bounces.password_file")
        if self.security == "none" and self.ca_file:
            problems.append("ca_file needs security = 'starttls' or 'tls'")
        if self.security == "none" and not _loopback(self.host) and not self.allow_plaintext_auth:
            problems.append(
                f"security = 'none' would send the mailbox's password to {self.host} in clear; use security = 'tls' "
                "(or 'starttls'), or set allow_plaintext_auth = true"
            )
        if self.processed.removeprefix("folder:") in (self.folder, self.unmatched_folder):
            problems.append("processed must be another folder than folder and unmatched_folder (or 'delete')")
        if self.unmatched_folder == self.folder:
            problems.append("unmatched_folder must be another folder than folder (what is unmatched would be read again)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_port(self) -> int:
        return self.port or IMAP_PORTS[self.security]

    @property
    def processed_folder(self) -> str | None:
        """The folder processed bounces go to; None: they are deleted."""
        return self.processed.removeprefix("folder:") if self.processed != "delete" else None

    def secret(self) -> str:
        """The mailbox's password, read when the watcher logs in; never in settings dumps or history."""
        return _password(self.password, self.password_file) or ""


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
    # Payload encryption (AES-256-GCM) of everything printroom writes into Temporal: `id:base64` keys, the last one
    # encrypting, all decrypting. Never in the TOML: PRINTROOM_TEMPORAL__ENCRYPTION_KEY, or a file (mode 600)
    # named here, which `printroom keys new` writes. Unset: payloads go in clear.
    encryption_key: SecretStr | None = None
    encryption_key_file: Path | None = None
    # false, with the keys kept: encryption turned off; new payloads go in clear, encrypted ones stay readable.
    encrypt: bool = True
    # The id of the key that encrypts (unset: the last one given). Rotating: add the new key, restart every worker,
    # `printroom web` and CLI host with it (decrypt-only, this still naming the old key), then name the new key here.
    encrypt_with: str | None = None

    @model_validator(mode="after")
    def _keys_usable(self) -> TemporalSettings:
        if self.encryption_key is not None and self.encryption_key_file is not None:
            raise ValueError("encryption keys are given twice (PRINTROOM_TEMPORAL__ENCRYPTION_KEY and encryption_key_file); keep one")
        # A file's mode, a key's length or a malformed line: said now, naming the file and the key.
        if self.key_ring() is None and not self.encrypt:
            raise ValueError("encrypt = false keeps encrypted orders readable with their keys, but no key is given (encryption_key_file)")
        if self.encrypt_with is not None and self.encryption_key is None and self.encryption_key_file is None:
            raise ValueError(f"encrypt_with names key {self.encrypt_with[:80]!r}, but no key is given (encryption_key_file)")
        return self

    def key_ring(self) -> KeyRing | None:
        """The encryption keys, read now; None when encryption is off. Raises KeyFileError naming what is wrong."""
        from printroom.codec import KeyRing  # cryptography and temporalio's converter only where keys are read

        if self.encryption_key is not None:
            return KeyRing.parse(self.encryption_key.get_secret_value(), "PRINTROOM_TEMPORAL__ENCRYPTION_KEY", self.encrypt_with)
        return KeyRing.read(self.encryption_key_file, self.encrypt_with) if self.encryption_key_file is not None else None

    def codec(self) -> EncryptionCodec | None:
        """The payload codec of every printroom client and worker (None: encryption off, no keys)."""
        from printroom.codec import EncryptionCodec

        keys = self.key_ring()
        return EncryptionCodec(keys, encrypt=self.encrypt) if keys is not None else None


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

    @model_validator(mode="after")
    def _overrides_readable(self) -> TemplateSettings:
        if self.override_dir.exists() and not self.override_dir.is_dir():
            raise ValueError(f"override_dir {self.override_dir} is not a directory (customised templates go in <lang>/ below it)")
        if self.override_dir.is_dir() and not os.access(self.override_dir, os.R_OK | os.X_OK):
            raise ValueError(f"override_dir {self.override_dir} cannot be read by this user")
        return self


class DocumentSettings(_Section):
    """T8, A2: the document store that orders' file references are relative to, and how big attachments may be."""

    root: Path | None = None
    max_file_mb: float = Field(default=10, gt=0, le=100)
    max_total_mb: float = Field(default=20, gt=0, le=100)

    @model_validator(mode="after")
    def _root_exists(self) -> DocumentSettings:
        if self.root is not None and not self.root.is_dir():
            raise ValueError(f"root {self.root} is not a directory")
        if self.root is not None and not os.access(self.root, os.R_OK | os.X_OK):
            raise ValueError(f"root {self.root} cannot be read by this user; attachments are read from it")
        return self


class DraftSettings(_Section):
    """E2-E4, S5, A1: what operators may change in a held draft, when they are reminded, and the bounds."""

    operator_may_edit_cc: bool = False
    operator_may_attach: bool = False
    # Off: a draft's recipients are the order's. On: an operator may correct a mistyped address (each one validated).
    operator_may_edit_to: bool = False
    # A draft waiting this long sends the operators `draft_waiting`, again after as long, at most max_reminders.
    remind_after: Duration = Field(default=timedelta(hours=4), ge=timedelta(minutes=1))
    max_reminders: int = Field(default=3, ge=0, le=50)
    max_pending: int = Field(default=20, ge=1, le=200)
    # HTML and text together; 256 KB is where Temporal starts warning about a payload's size.
    max_html_kb: int = Field(default=256, ge=16, le=256)

    def rules(self) -> DraftRules:
        return DraftRules(
            may_edit_cc=self.operator_may_edit_cc, may_edit_to=self.operator_may_edit_to, may_attach=self.operator_may_attach,
            max_html_kb=self.max_html_kb,
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


# An approver's comment: 2,000 characters of any script. A browser sends each as up to 4 UTF-8 bytes, each byte
# percent-encoded as 3 characters, beside the form's other fields (1 KB): the smallest form that never refuses one.
MAX_COMMENT = 2000
MIN_FORM_KB = -(-(MAX_COMMENT * 4 * 3 + 1024) // 1024)


def _local(url: str) -> bool:
    """Whether a public address reaches this machine only, the one case where http:// is safe: its host as a URL
    parser reads it (in http://127.0.0.1@evil.com/ that is evil.com)."""
    return _loopback(urlsplit(url).hostname or "")


def _loopback(host: str) -> bool:
    """Whether a host is this machine only: a loopback address, localhost or *.localhost (which never leave it, RFC
    6761); 0.0.0.0 and :: take connections from all, and 127.evil.com is anyone's."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _owner_only_secret(path: Path, field: str) -> bytes:
    """A codec secret file: refused, like the key file, unless only its owner may read it (it decrypts like the key)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise ValueError(f"{field} {path} does not exist") from None
    except OSError as error:
        raise ValueError(f"{field} {path} cannot be read ({error.strerror}); let printroom web's user read it") from None
    if mode & 0o077:
        raise ValueError(f"{field} {path} has mode {mode:03o}: others may read it, and it decrypts like the key; run `chmod 600 {path}`")
    return _secret_file(path, field)


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
    # The largest form an approver's browser may send; at least what a 2,000-character comment in any script takes.
    max_form_kb: int = Field(default=MIN_FORM_KB, ge=MIN_FORM_KB, le=256)
    # Connections one client address may hold at once (a browser opens up to 6). Behind a reverse proxy every
    # visitor comes from the proxy's address: raise this to the proxy's own limit, and let the proxy limit clients.
    max_connections_per_client: int = Field(default=16, ge=1, le=200)
    # The codec server (/codec/encode, /codec/decode) that lets the Temporal Web UI and CLI read encrypted payloads.
    # "token": each request carries `Authorization: Bearer <codec_token>` (PRINTROOM_WEB__CODEC_TOKEN or a file
    # named here, at least 32 bytes); "proxy": the reverse proxy in front authenticates every /codec request.
    codec_auth: Literal["token", "proxy"] = "token"
    codec_token: SecretStr | None = None
    codec_token_file: Path | None = None
    # With codec_auth = "proxy": a file (mode 600, at least 32 bytes) whose secret the proxy sends in the header
    # X-Printroom-Codec-Proxy, so a request that did not come through the proxy is refused. Needed unless `host`
    # is loopback (the proxy on this machine): otherwise anyone reaching host:port would decrypt through /codec.
    codec_proxy_secret_file: Path | None = None
    # The largest codec request (a history downloaded from the Web UI is decoded in one).
    codec_max_mb: int = Field(default=8, ge=1, le=64)

    def codec_bearer(self) -> str | None:
        """The codec server's token, read now (the settings check it, and the codec server again at start); None
        when none is set. Raises ValueError naming the setting."""
        if self.codec_token is not None:
            token = self.codec_token.get_secret_value().encode("utf-8")
        elif self.codec_token_file is not None:
            token = _owner_only_secret(self.codec_token_file, "web.codec_token_file")
        else:
            return None
        if len(token) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the codec token (PRINTROOM_WEB__CODEC_TOKEN or codec_token_file) holds {len(token)} bytes; it must hold "
                f"at least {MIN_SECRET_BYTES}: make one with `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return token.decode("utf-8")

    def codec_proxy_secret(self) -> bytes | None:
        """The secret the proxy sends with each /codec request, read now; None when not needed (loopback). Raises
        ValueError naming the setting when proxy mode would let requests that bypass the proxy decrypt."""
        if self.codec_proxy_secret_file is None:
            if self.codec_auth == "proxy" and not _loopback(self.host):
                raise ValueError(
                    f"codec_auth = 'proxy' while printroom web listens on {self.host} (not loopback): anyone reaching "
                    f"{self.host}:{self.port} without the proxy would decrypt through /codec; set codec_proxy_secret_file "
                    "(a secret the proxy sends in the header X-Printroom-Codec-Proxy), or host = '127.0.0.1' with the "
                    "proxy on this machine"
                )
            return None
        if self.codec_auth != "proxy":
            raise ValueError("codec_proxy_secret_file is set, but codec_auth is 'token': set codec_auth = 'proxy', or remove it")
        secret = _owner_only_secret(self.codec_proxy_secret_file, "codec_proxy_secret_file")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"codec_proxy_secret_file {self.codec_proxy_secret_file} holds {len(secret)} bytes; it must hold at least "
                f"{MIN_SECRET_BYTES}: make one with `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return secret

    @model_validator(mode="after")
    def _coherent(self) -> WebSettings:
        problems: list[str] = []  # every one said at once: the link secret, the public address, the codec's secrets
        self._secret_problems(problems)
        _said(problems, self.codec_bearer)
        _said(problems, self.codec_proxy_secret)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secret_problems(self, problems: list[str]) -> None:
        """The links' secret and the address they start with."""
        if self.secret is not None and len(self.secret.get_secret_value().encode("utf-8")) < MIN_SECRET_BYTES:
            problems.append(
                f"secret (PRINTROOM_WEB__SECRET) is shorter than {MIN_SECRET_BYTES} bytes; make one with "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        secret_file = self.secret_file
        held = _said(problems, lambda: _secret_file(secret_file, "secret_file")) if secret_file is not None else None
        if held is not None and len(held) < MIN_SECRET_BYTES:
            problems.append(
                f"secret_file {self.secret_file} holds {len(held)} bytes; it must hold at least {MIN_SECRET_BYTES}: make "
                f"one with `python3 -c 'import secrets; print(secrets.token_hex(32))' > {self.secret_file}`"
            )
        if self.public_url and "@" in urlsplit(self.public_url).netloc:
            problems.append(
                f"public_url {self.public_url} carries a user name (before '@'): emails' links would go to the host "
                "after it; remove everything up to the '@'"
            )
        elif self.public_url and self.public_url.startswith("http://") and not _local(self.public_url):
            problems.append(
                f"public_url {self.public_url}: approvers' links and answers would travel in clear; use https:// "
                "(http:// is for localhost only)"
            )
        if self.public_url and self.secret is None and self.secret_file is None:
            problems.append("public_url is set but no secret to sign links with: set PRINTROOM_WEB__SECRET or web.secret_file")

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


class DeskSettings(_Section):
    """The operators' desk (`printroom web`, /<lang>/desk/<token>): every held draft of every order in one list."""

    # Its link names no order: one bookmark serves the print room this long (draft_waiting carries a fresh one).
    link_ttl: Duration = Field(default=timedelta(days=7), ge=timedelta(minutes=5), le=timedelta(days=90))

    def link(self, web: WebSettings, signer: LinkSigner, language: str, now: datetime) -> str | None:
        """The desk's address, valid link_ttl from `now`; None without web.public_url."""
        return web.link(f"/{language}/desk/{signer.desk(DeskLink(now + self.link_ttl))}")


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
    # Checked against languages, whatever else is wrong (validate_default: the default "en" may not be active).
    default_language: Language = Field(default="en", validate_default=True)
    # IANA time zone in which emails write dates (%StatusDate%, %OrderDate%), e.g. "Europe/Paris".
    timezone: TimeZone = "UTC"
    smtp: SmtpSettings = SmtpSettings()
    # `[bounces]`: the mailbox bounces come back to, read by the bounce watcher; absent: none is read.
    bounces: BounceSettings | None = None
    temporal: TemporalSettings = TemporalSettings()
    shops: dict[str, ShopSettings] = {"default": ShopSettings()}
    emails: EmailPolicies = EmailPolicies()
    templates: TemplateSettings = TemplateSettings()
    # After emails: checked against their attachments (validate_default: no [documents] at all needs checking too).
    documents: DocumentSettings = Field(default=DocumentSettings(), validate_default=True)
    drafts: DraftSettings = DraftSettings()
    desk: DeskSettings = DeskSettings()
    budget: BudgetSettings = BudgetSettings()
    # `[cost_centres.<name>]`: orders name one with "cost_centre".
    cost_centres: dict[CostCentreName, CostCentreSettings] = {}
    # deliveries.url: the record in PostgreSQL instead (workers on several hosts). Before deliveries_dir, which
    # is checked only when no URL is given.
    deliveries: DeliverySettings = DeliverySettings()
    # Which messages the SMTP server accepted (exactly once): shared by every worker of the print room.
    deliveries_dir: Path = Field(default=Path("var/deliveries"), validate_default=True)
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

    # The checks across fields are field validators reading the fields declared before them (info.data), so that
    # they run, and say what they find, whatever another section got wrong; a field they read that failed itself is
    # named already, and they skip it.
    @field_validator("default_language")
    @classmethod
    def _default_language_active(cls, language: str, info: ValidationInfo) -> str:
        if "languages" in info.data and language not in info.data["languages"]:
            raise ValueError(f"{language!r} is not one of the active languages {info.data['languages']}")
        return language

    @field_validator("shops")
    @classmethod
    def _shop_languages_active(cls, shops: dict[str, ShopSettings], info: ValidationInfo) -> dict[str, ShopSettings]:
        active = info.data.get("languages")
        wrong = [f"{name}.default_language {shop.default_language!r}" for name, shop in shops.items()
                 if active is not None and shop.default_language not in (None, *active)]  # fmt: skip
        if wrong:
            raise ValueError(f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not one of the active languages {active}")
        return shops

    @field_validator("documents")
    @classmethod
    def _attachments_have_a_store(cls, documents: DocumentSettings, info: ValidationInfo) -> DocumentSettings:
        emails: EmailPolicies | None = info.data.get("emails")
        attaching = [f"emails.{t}.attachments" for t, p in emails.policies.items() if p.attachments] if emails else []
        if attaching and documents.root is None:
            raise ValueError(
                f"{', '.join(attaching)} {'needs' if len(attaching) == 1 else 'need'} a document store: set "
                "documents.root (the folder that orders' file references are relative to)"
            )
        return documents

    @field_validator("deliveries_dir")
    @classmethod
    def _deliveries_dir_usable(cls, path: Path, info: ValidationInfo) -> Path:
        """The worker makes and writes it at start: a file in its way, or a folder it may not write, said now."""
        deliveries: DeliverySettings | None = info.data.get("deliveries")
        if deliveries is None or deliveries.url is not None:  # deliveries is wrong (and named), or not a folder
            return path
        where = path
        try:
            while not where.exists() and where != where.parent:
                where = where.parent
            usable = where.is_dir(), os.access(where, os.W_OK | os.X_OK)
        except OSError as error:  # a name too long for the file system
            raise ValueError(f"{path}: {error.strerror}") from None
        if not usable[0]:
            raise ValueError(f"{path}: {where} is a file, not a folder")
        if not usable[1]:
            raise ValueError(f"{path}: {where} cannot be written by this user")
        return path

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
        except OSError as error:  # a folder, a file this user may not read
            raise SettingsError(f"settings file {path} cannot be read ({error.strerror})") from None
        except UnicodeDecodeError:
            raise SettingsError(f"settings file {path} is not UTF-8 text (TOML files are)") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
        url = data.get("deliveries", {}).get("url") if isinstance(data.get("deliveries"), dict) else None
        if isinstance(url, str) and (re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url) or re.search(r"(?i)[?&]password=", url)):
            raise SettingsError(
                f"settings file {path}: deliveries.url must not carry a password in the file in clear; "
                "give it in PGPASSWORD or ~/.pgpass (or the whole URL in PRINTROOM_DELIVERIES__URL)"
            )
        for section, field, variable in (
            ("smtp", "password", "PRINTROOM_SMTP__PASSWORD"), ("web", "secret", "PRINTROOM_WEB__SECRET"),
            ("temporal", "encryption_key", "PRINTROOM_TEMPORAL__ENCRYPTION_KEY"), ("web", "codec_token", "PRINTROOM_WEB__CODEC_TOKEN"),
            ("temporal", "api_key", "PRINTROOM_TEMPORAL__API_KEY"), ("bounces", "password", "PRINTROOM_BOUNCES__PASSWORD"),
        ):  # fmt: skip
            if isinstance(data.get(section), dict) and field in data[section]:
                in_a_file = f" or name a file in {section}.{field}_file" if f"{field}_file" in _FIELDS[section] else ""
                raise SettingsError(
                    f"settings file {path}: {section}.{field} must not be written in the file in clear; set {variable}{in_a_file}"
                )
    return _validated({**data, **overrides}, str(path) if path else "defaults and PRINTROOM_* variables")


SettingsSource = Settings | Mapping[str, Any] | str | os.PathLike[str] | None
# The fields of the sections that hold secrets: whether a secret may be named by a file (`<field>_file`).
_FIELDS = {"smtp": SmtpSettings.model_fields, "bounces": BounceSettings.model_fields, "web": WebSettings.model_fields, "temporal": TemporalSettings.model_fields}


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
        problems = validation_problems(error)  # one: one line; several: one line each
        raise SettingsError(f"invalid settings ({where}):" + ("\n  " if len(problems) > 1 else " ") + "\n  ".join(problems)) from None
    except EnvDecodeError as error:  # a PRINTROOM_* variable for a table or list that is not JSON
        raise SettingsError(f"invalid settings ({where}): {error}; give that variable as JSON") from None
