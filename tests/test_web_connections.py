"""`printroom web` under slow or greedy clients, over real sockets: a client that opens connections and never finishes
its headers cannot take the service from everyone else."""

from __future__ import annotations

import asyncio
import time

import pytest

from printroom.settings import Settings
from printroom.web.connections import client_key
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


async def test_a_request_that_declares_a_body_and_sends_one_byte_does_not_hold_its_connection(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """GET with Content-Length: 1000000, the answer read, one byte sent, then silence: the connection stayed open for
    ever (each byte stops uvicorn's keep-alive timer), and 16 of them per address locked that address's visitors out.
    The answer still reaches the client whole; then the connection ends."""
    monkeypatch.setattr("printroom.web.connections.LINGER", 1.0)  # 2 s in service
    web = with_web(settings)
    async with web_running(web, None):
        reader, writer = await asyncio.open_connection("127.0.0.1", web.web.port)
        writer.write(b"GET /page.css HTTP/1.1\r\nHost: printroom\r\nContent-Length: 1000000\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        css = await asyncio.wait_for(reader.readexactly(length), 5)
        writer.write(b"x")
        await writer.drain()
        started = time.monotonic()
        try:
            rest = await asyncio.wait_for(reader.read(), 10)  # EOF: the server ended it
        except asyncio.TimeoutError:
            rest = b"(still open after 10 s)"
        waited = time.monotonic() - started
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK") and b"body" in css
    assert rest == b"" and waited < 3, (rest, waited)


async def test_a_connection_ends_at_its_deadline_however_busy_after_the_answer_in_flight(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """A client that keeps asking on one connection, within every per-request deadline, had it for ever; now the
    connection ends at web.connections.CONNECTION_DEADLINE, and every answer it was given is whole."""
    monkeypatch.setattr("printroom.web.connections.CONNECTION_DEADLINE", 2.0)  # 120 s in service
    web = with_web(settings)
    async with web_running(web, None):
        reader, writer = await asyncio.open_connection("127.0.0.1", web.web.port)
        started, answers, closed_after = time.monotonic(), [], None
        while time.monotonic() - started < 8:
            writer.write(b"GET /page.css HTTP/1.1\r\nHost: printroom\r\n\r\n")
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except asyncio.IncompleteReadError:
                closed_after = time.monotonic() - started
                break
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            answers.append((head.split(b"\r\n")[0], len(await reader.readexactly(length)) == length))
            await asyncio.sleep(0.3)
        writer.close()
    assert closed_after is not None and 1.5 < closed_after < 4, closed_after
    assert answers and set(answers) == {(b"HTTP/1.1 200 OK", True)}


def test_connections_are_counted_per_ipv4_address_and_per_ipv6_64():
    """One IPv6 host holds a whole /64: counted per address, it could open 16 connections from each of 2^64."""
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    # A dual-stack listener sees IPv4 visitors as ::ffff:a.b.c.d: each is still its own client, not one /64 for all.
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1" != client_key("::ffff:192.0.2.2")
    assert client_key("192.0.2.1") == "192.0.2.1"
