"""Renders the pages: server-side Jinja in the same sandbox as the emails, escaped, with the security headers
every answer carries (no script, nothing from another host, never framed but by ourselves, no referrer)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from starlette.responses import HTMLResponse, Response

from printroom.web.text import TEXT

PAGES = Path(__file__).resolve().parent / "pages"

# Pages: our stylesheet and nothing else; forms post to us; no page of ours is framed by another site.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A preview of an operator's edits, its HTML in a sandboxed srcdoc frame (which takes this policy): the email's own
# inline styles and embedded images, still no script, nothing from another host.
PREVIEW_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace("img-src 'self'", "img-src 'self' data:")
# A draft's body as the email will carry it: its own inline styles, no script (sandbox), framed by our page only.
DRAFT_BODY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # personal pages behind personal links
}


class Pages:
    def __init__(self, timezone: str) -> None:
        self._env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(PAGES), autoescape=select_autoescape(default=True), undefined=StrictUndefined
        )
        self._timezone = ZoneInfo(timezone)

    def page(self, template: str, language: str, status: int = 200, *, policy: str | None = None, **values: Any) -> HTMLResponse:
        words = TEXT[language]
        html = self._env.get_template(template).render(
            t=words, lang=language, when=lambda moment: self.when(moment, language), money=lambda a, c: money(a, c, language),
            number=lambda n: format_decimal(n, locale=language), **values,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, "Content-Security-Policy": policy or PAGE_POLICY, "X-Frame-Options": "DENY"})

    def message(self, language: str, status: int, title: str, text: str) -> HTMLResponse:
        return self.page("message.html.j2", language, status, title=title, text=text)

    def when(self, moment: datetime | None, language: str) -> str:
        return format_datetime(moment, "medium", tzinfo=self._timezone, locale=language) if moment else ""


def money(amount: Decimal | None, currency: str | None, language: str) -> str:
    return "" if amount is None else format_currency(amount, currency or "EUR", locale=language)


def draft_body(html: str) -> Response:
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Content-Security-Policy": DRAFT_BODY_POLICY, "X-Frame-Options": "SAMEORIGIN"})


def stylesheet() -> Response:
    return Response((PAGES / "page.css").read_text(encoding="utf-8"), media_type="text/css", headers=SECURITY_HEADERS)
