"""printroom's Message-IDs read back (a bounce quotes one): which order, run and email it names. Pure, below
both activities (which write them, in `compose`) and workflows (which match a bounce to the emails they sent)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from printroom.models import Audience


def run_tag(run: str) -> str:
    """A short, stable name for one run of an order (its first execution's run id): 10 hex digits."""
    return hashlib.sha256(run.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class MessageIdParts:
    """What one of printroom's Message-IDs names, read back from it (a bounce quotes it): whose email it was."""

    order_id: str
    email_trigger: str
    occurrence: int
    audience: Audience
    run_tag: str  # "" in an email sent before Message-IDs named the run
    shop: str
    recipient_key: str  # 12 hex digits for an email written to one approver, else ""


_AUDIENCES: tuple[Audience, ...] = ("customer", "operators", "approvers")
_RUN_PART = re.compile(r"r[0-9a-f]{10}")
_RECIPIENT_KEY = re.compile(r"[0-9a-f]{12}")
_ESCAPED_RUN = re.compile(r"(?:=[0-9A-F]{2})+")


def parse_message_id(value: str) -> MessageIdParts | None:
    """The parts of a Message-ID that `message_id` made, or None for any other (someone else's, or damaged)."""
    value = value.strip()
    if not (value.startswith("<") and value.endswith(">")) or "@" not in value:
        return None
    parts = value[1:-1].rpartition("@")[0].split(".")
    # The order id may hold dots (they are not escaped); everything after it is dot-free: read from the right.
    for at in range(len(parts) - 1, 2, -1):
        audience, _, recipient_key = parts[at].partition("-")
        if audience in _AUDIENCES and parts[at - 1].isdigit() and (not recipient_key or _RECIPIENT_KEY.fullmatch(recipient_key)):
            break
    else:
        return None
    rest = parts[at + 1 :]
    run = rest.pop(0)[1:] if rest and _RUN_PART.fullmatch(rest[0]) else ""
    if len(rest) > 1:
        return None
    unescape = lambda text: _ESCAPED_RUN.sub(lambda m: bytes.fromhex(m.group().replace("=", "")).decode("utf-8", "replace"), text)  # noqa: E731
    order_id, email_trigger = unescape(".".join(parts[: at - 2])), unescape(parts[at - 2])
    if not order_id or not email_trigger:
        return None
    shop = unescape(rest[0]) if rest else "default"
    return MessageIdParts(order_id, email_trigger, int(parts[at - 1]), audience, run, shop, recipient_key)  # type: ignore[arg-type]
