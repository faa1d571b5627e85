"""Signed links: an approver's answer link, an operator's draft page and the operators' desk. The worker signs them
into emails and current details; `printroom web` reads them. HMAC-SHA256 by itsdangerous, one salt per kind of link, so a
preview token is never taken for an answer; each token carries its own expiry."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from itsdangerous import BadData, BadSignature, URLSafeSerializer

# The secret's floor: an HMAC key shorter than its hash's block invites guessing (and the issue asks for 32).
MIN_SECRET_BYTES = 32

Decision = Literal["approve", "reject"]
Problem = Literal["tampered", "expired", "malformed"]


class LinkError(Exception):
    """A link that is not honoured: its signature does not hold (tampered), its time is past, or it is not ours."""

    def __init__(self, problem: Problem, message: str, expired: datetime | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.expired = expired


@dataclass(frozen=True)
class ApprovalLink:
    """One approver's answer to one order's approval: what the page asks them to confirm."""

    order_id: str
    approver: str
    decision: Decision
    expires: datetime
    # When this approval was asked for: a link of an earlier approval of the same order (cancelled, started
    # again) is not one of this one's.
    asked: datetime


@dataclass(frozen=True)
class DraftLink:
    """A read-only view of one held draft of one order, named by its Message-ID (known before the order numbers it)."""

    order_id: str
    message_id: str
    expires: datetime


@dataclass(frozen=True)
class DeskLink:
    """The operators' list of every held draft: it names no order, so one bookmark serves the print room until it expires."""

    expires: datetime


class SecretTooShort(ValueError):
    pass


class LinkSigner:
    """Signs and reads links with the print room's web secret (never stored in settings dumps or history)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretTooShort(f"the web secret is {len(secret)} bytes; it must be at least {MIN_SECRET_BYTES}")
        sha256 = {"digest_method": hashlib.sha256}  # itsdangerous signs with SHA-1 unless told
        self._approvals = URLSafeSerializer(secret, salt="printroom.approval", signer_kwargs=sha256)
        self._drafts = URLSafeSerializer(secret, salt="printroom.draft-preview", signer_kwargs=sha256)
        self._desk = URLSafeSerializer(secret, salt="printroom.desk", signer_kwargs=sha256)

    def approval(self, link: ApprovalLink) -> str:
        return str(self._approvals.dumps([link.order_id, link.approver, link.decision, _stamp(link.expires), _stamp(link.asked)]))

    def draft(self, link: DraftLink) -> str:
        return str(self._drafts.dumps([link.order_id, link.message_id, _stamp(link.expires)]))

    def desk(self, link: DeskLink) -> str:
        return str(self._desk.dumps(["desk", _stamp(link.expires)]))

    def read_approval(self, token: str, now: datetime) -> ApprovalLink:
        order_id, approver, decision, expires, asked = _fields(self._approvals, token, 5)
        if decision not in ("approve", "reject") or not isinstance(order_id, str) or not isinstance(approver, str):
            raise LinkError("malformed", "this link does not name an order, an approver and a decision")
        if not isinstance(asked, int):
            raise LinkError("malformed", "this link does not say which approval it is for")
        return ApprovalLink(order_id, approver, decision, _unexpired(expires, now), datetime.fromtimestamp(asked, timezone.utc))

    def read_draft(self, token: str, now: datetime) -> DraftLink:
        order_id, message_id, expires = _fields(self._drafts, token, 3)
        if not isinstance(order_id, str) or not isinstance(message_id, str):
            raise LinkError("malformed", "this link does not name an order and a draft")
        return DraftLink(order_id, message_id, _unexpired(expires, now))


    def read_desk(self, token: str, now: datetime) -> DeskLink:
        kind, expires = _fields(self._desk, token, 2)
        if kind != "desk":
            raise LinkError("malformed", "this link is not the operators' desk")
        return DeskLink(_unexpired(expires, now))


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _fields(serializer: URLSafeSerializer, token: str, count: int) -> list[object]:
    try:
        fields = serializer.loads(token)
    except BadSignature:
        raise LinkError("tampered", "this link's signature does not match: it was changed, or cut when copied") from None
    except BadData:
        raise LinkError("malformed", "this is not a printroom link") from None
    if not isinstance(fields, list) or len(fields) != count:
        raise LinkError("malformed", "this is not a printroom link")
    return fields


def _unexpired(stamp: object, now: datetime) -> datetime:
    if not isinstance(stamp, int):
        raise LinkError("malformed", "this link carries no expiry")
    expires = datetime.fromtimestamp(stamp, timezone.utc)
    if now >= expires:
        raise LinkError("expired", f"this link expired on {expires:%d %b %Y at %H:%M} UTC", expires)
    return expires
