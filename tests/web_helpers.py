"""`printroom web` as a visitor meets it: served by uvicorn on a real port, asked over HTTP."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import Message
from html import unescape

from temporalio.client import Client

from printroom.cli.capture import CapturedMessage
from printroom.settings import Settings, WebSettings
from printroom.web.server import serve_web
from tests.conftest import free_port

SECRET = "printroom-test-secret-0123456789abcdef"  # 38 bytes: over the 32 the service asks for


def with_web(settings: Settings, port: int | None = None) -> Settings:
    """Settings with `printroom web` on a free port, its public address and a secret."""
    port = port or free_port()
    web = WebSettings.model_validate({"port": port, "public_url": f"http://127.0.0.1:{port}", "secret": SECRET})
    return settings.model_copy(update={"web": web})


@asynccontextmanager
async def web_running(settings: Settings, client: Client | None) -> AsyncIterator[str]:
    """The service on settings.web.port until the block ends; yields its base URL."""
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_web(settings, stop, client))
    base = f"http://127.0.0.1:{settings.web.port}"
    for _ in range(100):
        if serving.done():
            serving.result()
        try:
            await fetch(f"{base}/page.css")
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield base
    finally:
        stop.set()
        await serving


@dataclass
class Answer:
    status: int
    headers: Message  # case-insensitive, as HTTP header names are
    body: str

    @property
    def text(self) -> str:
        """The page's words, tags dropped, as a visitor reads them."""
        return " ".join(unescape(re.sub(r"<[^>]+>", " ", self.body)).split())


async def fetch(
    url: str, form: dict[str, str] | bytes | None = None, content_type: str = "application/x-www-form-urlencoded", cookie: str = ""
) -> Answer:
    """GET, or POST a form (a dict, URL-encoded as a browser does; or raw bytes); with `cookie` as a browser sends it."""

    def call() -> Answer:
        data = None
        if form is not None:
            from urllib.parse import urlencode

            data = form if isinstance(form, bytes) else urlencode(form).encode("ascii")
        request = urllib.request.Request(url, data=data, method="POST" if form is not None else "GET")
        if form is not None:
            request.add_header("Content-Type", content_type)
        if cookie:
            request.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode("utf-8"))

    return await asyncio.to_thread(call)


def answer_links(message: CapturedMessage) -> dict[str, str]:
    """The Approve and Reject links of an approval email's HTML part, by decision."""
    html = message.parsed().get_body(("html",)).get_content()
    links = re.findall(r'href="(http://[^"]+/approvals/[^"]+)"[^>]*>\s*([^<]+?)\s*<', html)
    found = {}
    for url, label in links:
        decision = "approve" if label in ("Approve", "Approuver", "Freigeben") else "reject"
        found[decision] = unescape(url)
    return found
