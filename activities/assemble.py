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
from printroom.models import Audience, StatusEmailRequest
from printroom.settings import EmailPolicy, Settings


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

    def __init__(self, settings: Settings, renderer: TemplateRenderer, documents: DocumentStore) -> None:
        self.settings, self.renderer, self.documents = settings, renderer, documents
        self._senders: dict[str, Address] = {}  # an Address parses its addr-spec: 30 µs, once per shop

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
    ) -> EmailContext:
        """What variables are computed from besides the order: the shop's sender and order page, the SMTP facts."""
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
        )

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
    ) -> tuple[RenderedEmail, list[FilePart]]:
        """The trigger's template (policy), in the order's language, for this audience; with the images it shows."""
        order = request.order
        return self.render(
            self.settings.emails.for_trigger(request.email_trigger).template or request.email_trigger,
            self.settings.languages_for(order.language, order.shop),
            self.context(order.shop, now=now, request=request, audience=audience, operator_url=operator_url, operator_note=operator_note),
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
        rendered, images = self.render_for(request, audience, now=now, operator_url=operator_url)
        policy = self.settings.emails.for_trigger(request.email_trigger)
        attachments = self.documents.attachments(order, policy.attachments)
        return self.build(
            rendered, sender=sender, to=to, cc=cc, message_id=message_id(request, audience, sender.domain), now=now,
            references=thread_references(request, audience, sender.domain), images=images, attachments=attachments,
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
