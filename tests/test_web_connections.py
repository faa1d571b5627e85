"""`printroom web` under slow or greedy clients, over real sockets: a client that opens connections and never finishes
its headers cannot take the service from everyone else."""

from __future__ import annotations

import asyncio
import time

import pytest

from printroom.settings import Settings
from tests.web_helpers import fetch, web_running, with_web

HALF_A_REQUEST = b"GET /page.css HTTP/1.1\r\nHost: printroom\r\n"  # and the blank line never comes


async def half_open(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(HALF_A_REQUEST)
    await writer.drain()
    return reader, writer


async def test_205_half_open_connections_from_one_address_leave_the_page_to_everyone_else(settings: Settings):
    """205 connections that never finish their headers answered every other visitor with a bare 503 (uvicorn's
    limit_concurrency, 200). One address now holds at most web.max_connections_per_client; the rest get 429."""
    web = with_web(settings)
    async with web_running(web, None) as base:
        greedy = [await half_open(web.web.port, "127.0.0.2") for _ in range(205)]
        page = await fetch(f"{base}/page.css")  # another visitor (127.0.0.1)
        refused = [await asyncio.wait_for(reader.read(100), 5) for reader, _ in greedy[web.web.max_connections_per_client :]]
        for _, writer in greedy:
            writer.close()
    assert page.status == 200 and "body" in page.body
    assert web.web.max_connections_per_client == 16
    assert set(refused) == {b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[:100]}


async def test_headers_that_do_not_come_in_time_end_the_connection_with_408(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("printroom.web.connections.HEADER_TIMEOUT", 1.0)  # 10 s in service
    web = with_web(settings)
    async with web_running(web, None):
        reader, writer = await half_open(web.web.port, "127.0.0.1")
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the server closed it
        waited = time.monotonic() - started
        writer.close()
        # A client that sends its request whole, slowly but within the deadline, is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", web.web.port)
        for part in (b"GET /page.css HTTP/1.1\r\n", b"Host: printroom\r\n", b"Connection: close\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.2)
        whole = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout") and 0.9 < waited < 3, (answer, waited)
    assert whole.startswith(b"HTTP/1.1 200 OK")
