"""`printroom drafts …`: the held drafts of every order, from the command line (the same requests as the Web UI)."""

from __future__ import annotations

from datetime import datetime, timezone
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.documents import AttachmentError, DocumentStore
from printroom.activities.rendering import RenderedEmail, TemplateError, TemplateRenderer
from printroom.cli.errors import CommandRefused
from printroom.cli.template_admin import html_for_browser
from printroom.draft_requests import discard_and_confirm
from printroom.links import LinkSigner
from printroom.models import Draft, DraftSent, OrderState, RefusedRequest, order_workflow_id
from printroom.settings import Settings


class DraftsError(CommandRefused):
    """What the operator asked cannot be done; the message says why."""


def workflow_id(order: str) -> str:
    """Orders are named by their id (PO-1001) or their workflow id (order-PO-1001)."""
    return order if order.startswith("order-") else order_workflow_id(order)


async def resolve(client: Client, order: str) -> str:
    """The order's workflow id. `order-7` may be the order whose id is `order-7` (workflow `order-order-7`) or the
    workflow of order `7`: the order of that very id wins when it exists."""
    if not order.startswith("order-"):
        return order_workflow_id(order)
    try:
        await client.get_workflow_handle(order_workflow_id(order)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return order
        raise DraftsError(f"cannot look up {order_workflow_id(order)}: {error.message}") from None
    return order_workflow_id(order)


async def waiting(client: Client) -> list[tuple[str, str, int]]:
    """(workflow id, status, drafts) of every open order with drafts waiting, through the visibility store."""
    found = []
    async for execution in client.list_workflows('WorkflowType = "OrderWorkflow" AND ExecutionStatus = "Running" AND DraftsPending > 0'):
        attributes = execution.search_attributes
        found.append((execution.id, str((attributes.get("OrderStatus") or ["?"])[0]), int((attributes.get("DraftsPending") or [0])[0])))
    return found


async def drafts_of(client: Client, order: str) -> list[Draft]:
    try:
        return await client.get_workflow_handle(workflow_id(order)).query("drafts", result_type=list[Draft])
    except (RPCError, WorkflowQueryFailedError) as error:
        raise DraftsError(f"cannot read the drafts of {workflow_id(order)}: {getattr(error, 'message', error)}") from None


def pick(drafts: list[Draft], draft_id: str | None, order: str) -> Draft:
    if draft_id is None and len(drafts) == 1:
        return drafts[0]
    ids = ", ".join(d.id for d in drafts) or "none"
    if draft_id is None:
        raise DraftsError(f"{workflow_id(order)} has {len(drafts)} drafts waiting ({ids}); name one")
    for draft in drafts:
        if draft.id == draft_id:
            return draft
    raise DraftsError(f"{workflow_id(order)} has no draft {draft_id!r} waiting; waiting: {ids}")


def as_email(settings: Settings, draft: Draft) -> AssembledEmail:
    """The draft as the bytes it would go out as (images and attachments read now), for a mail client."""
    name, address = parseaddr(draft.sender)
    assembler = EmailAssembler(settings, TemplateRenderer(settings.templates.override_dir), DocumentStore(settings.documents))
    rendered = RenderedEmail(draft.subject, draft.html, draft.text, draft.language, draft.email_trigger)
    return assembler.build(
        rendered, sender=Address(display_name=name, addr_spec=address), to=draft.to, cc=draft.cc,
        message_id=draft.message_id, now=datetime.now(timezone.utc), references=draft.references,
        images=assembler.images_shown(draft.html, draft.shop), attachments=assembler.documents.files(draft.attachments),
    )  # fmt: skip


def write_out(settings: Settings, draft: Draft, out: Path) -> None:
    if out.suffix not in (".html", ".eml"):
        raise DraftsError("--out must end in .html (for a browser) or .eml (for a mail client)")
    try:
        email = as_email(settings, draft)
    except (TemplateError, AttachmentError) as error:
        raise DraftsError(f"{draft.id} cannot be written out: {error}") from None
    if out.suffix == ".eml":
        out.write_bytes(email.data)
    else:
        out.write_text(html_for_browser(email), encoding="utf-8")


def fresh_link(settings: Settings, order: str, draft: Draft) -> str:
    """A new preview link for a draft (the one in current details expires after web.draft_link_valid_for)."""
    signer = _signer(settings, "a preview link")
    order_id, now = workflow_id(order).removeprefix("order-"), datetime.now(timezone.utc)
    return _linked(settings.web.draft_preview(signer, order_id, draft.message_id, now), "a preview link")


def desk_link(settings: Settings, language: str, now: datetime) -> str:
    """A fresh link to the operators' desk (every held draft of every order), valid desk.link_ttl from `now`."""
    signer = _signer(settings, "the desk's link")
    return _linked(settings.desk.link(settings.web, signer, language, now), "the desk's link")


def _signer(settings: Settings, what: str) -> LinkSigner:
    try:
        signer = settings.web.signer()
    except (OSError, ValueError) as error:
        raise DraftsError(f"cannot sign {what}: {error}") from None
    if signer is None:
        raise DraftsError(f"{what} needs the web secret (PRINTROOM_WEB__SECRET or web.secret_file)")
    return signer


def _linked(link: str | None, what: str) -> str:
    if link is None:
        raise DraftsError(f"{what} needs web.public_url, the address printroom web answers at")
    return link


def describe(draft: Draft) -> str:
    lines = [
        f"{draft.id}: {draft.email_trigger} to the {draft.audience}, held since {draft.created_at:%Y-%m-%d %H:%M} UTC",
        f"  From: {draft.sender}",
        f"  To: {', '.join(draft.to)}",
    ]
    lines += [f"  Cc: {', '.join(draft.cc)}"] if draft.cc else []
    lines += [f"  Subject: {draft.subject}", f"  Message-ID: {draft.message_id}"]
    lines += [f"  Attachments: {', '.join(draft.attachments)}"] if draft.attachments else []
    lines += [f"  Held because: {draft.reason}"] if draft.reason else []
    lines += [f"  Last attempt to send: {draft.last_error}"] if draft.last_error else []
    lines += ["", *("  " + line for line in draft.text.rstrip().splitlines())]
    return "\n".join(lines)


async def send(client: Client, order: str, edits: dict[str, Any]) -> DraftSent:
    """The `edit_and_send` update: the workflow's answer, or its refusal as a DraftsError."""
    order = await resolve(client, order)
    handle = client.get_workflow_handle(workflow_id(order))
    try:
        return await handle.execute_update("edit_and_send", edits, result_type=DraftSent)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise DraftsError(getattr(cause, "message", None) or str(cause)) from None
    except RPCError as error:
        raise DraftsError(f"{workflow_id(order)}: {error.message}") from None


async def discard(client: Client, order: str, draft_id: str, reason: str, by: str) -> OrderState:
    """The `discard_draft` signal, then the order's state to say whether it was applied or refused, and why."""
    order = await resolve(client, order)
    try:
        answer = await discard_and_confirm(client.get_workflow_handle(workflow_id(order)), draft_id, reason, by)
    except RPCError as error:
        raise DraftsError(f"{workflow_id(order)}: {error.message}") from None
    if isinstance(answer, RefusedRequest):
        raise DraftsError(answer.reason)
    if answer is not None:
        return answer
    raise DraftsError(f"{workflow_id(order)}: the discard was sent but no worker applied it within 10 s; is a worker running?")
