"""Reads an approver's form: URL-encoded, UTF-8, bounded; anything else is refused with what was wrong."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from starlette.requests import Request

from printroom.settings import MAX_COMMENT

__all__ = ["MAX_COMMENT", "FormRefused", "read_form"]

# A form is a few KB: a client that takes longer to send it is stalling (or holding a connection on purpose).
READ_TIMEOUT = 15.0


class FormRefused(Exception):
    """A form that is not read: `status` is the HTTP answer (400, 408, 413, 415); `words` names the page's text
    that says why (in the page's language), filled with `values`; the message is the same in English, for logs."""

    def __init__(self, status: int, message: str, words: str, **values: object) -> None:
        super().__init__(message)
        self.status, self.words, self.values = status, words, values


async def read_form(request: Request, max_bytes: int) -> dict[str, str]:
    """The fields of a URL-encoded form, read no further than `max_bytes` (web.max_form_kb)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        got = kind or "no content type"
        raise FormRefused(415, f"expected a form (application/x-www-form-urlencoded), got {got}", "form_not_a_form", got=got)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise _too_large(max_bytes)
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise _too_large(max_bytes)

    try:
        await asyncio.wait_for(read(), READ_TIMEOUT)
    except asyncio.TimeoutError:
        raise FormRefused(408, f"the form did not arrive within {READ_TIMEOUT:.0f} seconds", "form_too_slow", seconds=int(READ_TIMEOUT)) from None
    try:
        text = body.decode("utf-8")
        fields = parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FormRefused(400, "the form is not UTF-8 text", "form_not_utf8") from None
    form: dict[str, str] = {}
    for name, value in fields:
        if name in form:
            raise FormRefused(400, f"the form gives {name!r} twice", "form_twice", name=name)
        form[name] = value
    return form


def _too_large(max_bytes: int) -> FormRefused:
    return FormRefused(413, f"the form is larger than {max_bytes // 1024} KB", "form_too_large", kb=max_bytes // 1024)
