"""Gathers what one email needs (template, variables, images, attachments) and builds its bytes: the one path
that sending, preview and `templates check` all take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.headerregistry import Address
from pathlib import Path
from zoneinfo import ZoneInfo

from printroom.activities.compose import FilePart, build_message, message_id, referenced_images, thread_references
from printroom.activities.documents import DocumentStore, content_type
from printroom.activities.rendering import RenderedEmail, TemplateError, TemplateRenderer
from printroom.activities.variables import EmailContext, template_values
from printroom.links import ApprovalLink, DraftLink, LinkSigner
from printroom.models import Audience, StatusEmailRequest
from printroom.settings import EmailPolicy, Settings

# The approvers' emails that carry Approve and Reject links: one message per approver, each link theirs alone.
ANSWERED_BY_LINK = frozenset({"approval_requested", "approval_reminder"})


@dataclass(frozen=True)
class AssembledEmail:
    rendered: RenderedEmail
    message_id: str
    data: bytes
    sender: Address
    to: list[str]
    cc: list[str]
    attachments: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return self.rendered.subject


class EmailAssembler:
    """Reads images and attachments from disk when the message is built, never earlier (A2)."""

    def __init__(
        self, settings: Settings, renderer: TemplateRenderer, documents: DocumentStore, signer: LinkSigner | None = None
    ) -> None:
        self.settings, self.renderer, self.documents = settings, renderer, documents
        # Answer links need both where `printroom web` answers and the secret to sign them with.
        self.signer = signer if settings.web.public_url else None
        self._senders: dict[str, Address] = {}  # an Address parses its addr-spec: 30 µs, once per shop

    def one_by_one(self, request: StatusEmailRequest, audience: Audience) -> bool:
        """Whether this audience gets one message per recipient: approvers asked to answer by link."""
        approval = request.approval
        return (
            self.signer is not None and audience == "approvers" and request.email_trigger in ANSWERED_BY_LINK
            and approval is not None and approval.answer_by is not None
        )  # fmt: skip

    def recipient(self, request: StatusEmailRequest, audience: Audience, to: list[str]) -> str | None:
        """The one recipient a message written one by one is for (its Message-ID and links are theirs)."""
        return to[0] if len(to) == 1 and self.one_by_one(request, audience) else None

    def preview_url(self, order_id: str, message_id: str, now: datetime) -> str | None:
        """A held draft's read-only page in `printroom web`, for the operators' current details."""
        return None if self.signer is None else self.settings.web.draft_preview(self.signer, order_id, message_id, now)

    def answer_tokens(self, request: StatusEmailRequest, recipient: str | None) -> dict[str, str]:
        approval = request.approval
        if recipient is None or self.signer is None or approval is None or approval.answer_by is None:
            return {}
        expires = approval.links_expire or approval.answer_by
        return {
            decision: self.signer.approval(ApprovalLink(request.order.id, recipient, decision, expires, approval.requested_at))
            for decision in ("approve", "reject")
        }  # fmt: skip

    def sender_for(self, shop_name: str) -> Address:
        """S1-S3: the print room's address and name, unless the order's shop has its own."""
        if shop_name not in self._senders:
            shop, sender = self.settings.shops.get(shop_name), self.settings.sender
            address = (shop and shop.sender_address) or sender.address
            name = (shop and shop.sender_name) or sender.name
            self._senders[shop_name] = Address(display_name=name, addr_spec=str(address))
        return self._senders[shop_name]

    def cc_for(self, policy: EmailPolicy | None) -> list[str]:
        """S4: the sender's Cc list where the policy asks for it (always for the test email, `policy` None)."""
        addresses = [*(self.settings.sender.cc if policy is None or policy.cc else []), *(policy.extra_cc if policy else [])]
        return list(dict.fromkeys(str(a) for a in addresses))

    def context(
        self,
        shop_name: str,
        *,
        now: datetime,
        request: StatusEmailRequest | None = None,
        audience: Audience = "customer",
        operator_url: str | None = None,
        operator_note: str = "",
        recipient: str | None = None,
    ) -> EmailContext:
        """What variables are computed from besides the order: the shop's sender and order page, the SMTP facts,
        and the answer links of the one approver a message is for."""
        sender, smtp = self.sender_for(shop_name), self.settings.smtp
        return EmailContext(
            language=self.settings.default_language,
            print_room_name=sender.display_name or "",
            sender_address=sender.addr_spec,
            order_url_pattern=self.settings.shop(shop_name).order_url,
            now=now,
            timezone=ZoneInfo(self.settings.timezone),
            request=request,
            audience=audience,
            smtp={"host": smtp.host, "port": smtp.effective_port, "security": smtp.security, "user": smtp.username or ""},
            operator_url=operator_url,
            operator_note=operator_note,
            answer_tokens=self.answer_tokens(request, recipient) if request is not None else {},
            web_url=self.settings.web.link(""),
            **self._desk_urls(request, now),
        )

    def _desk_urls(self, request: StatusEmailRequest | None, now: datetime) -> dict[str, str | None]:
        """The desk's link and the draft's editor, for an email that tells the operators a draft waits
        (draft_waiting); none elsewhere. In the operators' language (default_language)."""
        waiting = request.waiting_draft if request is not None else None
        if self.signer is None or request is None or waiting is None:
            return {}
        language, web = self.settings.default_language, self.settings.web
        draft = DraftLink(request.order.id, waiting.message_id, now + web.draft_link_valid_for)
        return {
            "desk_url": self.settings.desk.link(web, self.signer, language, now),
            "draft_url": web.link(f"/{language}/drafts/{self.signer.draft(draft)}") if waiting.message_id else None,
        }

    def render(
        self, template: str, languages: list[str], context: EmailContext, images: Mapping[str, Path]
    ) -> tuple[RenderedEmail, list[FilePart]]:
        """Render in the first language that has the template, and read the images its HTML shows."""
        language = self.renderer.language_for(template, languages)
        ctx = replace(context, language=language, images=frozenset(images))
        rendered = self.renderer.render(template, language, template_values(ctx, template))
        return rendered, self._images(rendered.html, images, f"template {language}/{template}.html.j2")

    def render_for(
        self,
        request: StatusEmailRequest,
        audience: Audience,
        *,
        now: datetime,
        operator_url: str | None = None,
        operator_note: str = "",
        recipient: str | None = None,
    ) -> tuple[RenderedEmail, list[FilePart]]:
        """The trigger's template (policy), in the order's language, for this audience; with the images it shows."""
        order = request.order
        context = self.context(
            order.shop, now=now, request=request, audience=audience, operator_url=operator_url,
            operator_note=operator_note, recipient=recipient,
        )  # fmt: skip
        return self.render(
            self.settings.emails.for_trigger(request.email_trigger).template or request.email_trigger,
            self.settings.languages_for(order.language, order.shop),
            context,
            self.settings.images_for(order.shop),
        )

    def images_shown(self, html: str, shop_name: str) -> list[FilePart]:
        """The configured images an operator's HTML shows (cid:NAME), read now."""
        return self._images(html, self.settings.images_for(shop_name), "the draft's HTML")

    def _images(self, html: str, images: Mapping[str, Path], where: str) -> list[FilePart]:
        parts = []
        for name in referenced_images(html):
            if name not in images:
                raise TemplateError(
                    f"{where} shows cid:{name}, but no image {name!r} is configured (templates.images.{name} in the settings)"
                )
            path = images[name]
            parts.append(FilePart(name=name, filename=path.name, content_type=content_type(path.name), data=path.read_bytes()))
        return parts

    def assemble(
        self,
        request: StatusEmailRequest,
        audience: Audience,
        *,
        to: list[str],
        cc: list[str],
        now: datetime,
        operator_url: str | None = None,
    ) -> AssembledEmail:
        """Raises TemplateError (the template must be fixed) or AttachmentError (a file is missing or too big)."""
        order = request.order
        sender = self.sender_for(order.shop)
        recipient = self.recipient(request, audience, to)
        rendered, images = self.render_for(request, audience, now=now, operator_url=operator_url, recipient=recipient)
        policy = self.settings.emails.for_trigger(request.email_trigger)
        attachments = self.documents.attachments(order, policy.attachments)
        return self.build(
            rendered, sender=sender, to=to, cc=cc, message_id=message_id(request, audience, sender.domain, recipient),
            now=now, references=thread_references(request, audience, sender.domain, recipient), images=images,
            attachments=attachments,
        )  # fmt: skip

    def build(
        self,
        rendered: RenderedEmail,
        *,
        sender: Address,
        to: list[str],
        cc: list[str],
        message_id: str,
        now: datetime,
        references: list[str] | None = None,
        images: list[FilePart] | None = None,
        attachments: list[FilePart] | None = None,
    ) -> AssembledEmail:
        reply_to = self.settings.sender.reply_to
        data = build_message(
            rendered, sender=sender, to=to, cc=cc, reply_to=str(reply_to) if reply_to else None, message_id=message_id,
            date=now, references=references or [], images=images or [], attachments=attachments or [],
        )  # fmt: skip
        names = [a.filename for a in attachments or []]
        return AssembledEmail(rendered, message_id, data, sender, to, cc, names)
