"""Serves the app with uvicorn inside our own event loop: `printroom web` and `printroom dev` stop it with the rest
(our signal handling, not uvicorn's), and a busy port is said in one line naming the setting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from temporalio.client import Client

from printroom.settings import Settings
from printroom.web.app import build_app
from printroom.web.connections import guarded_h11
from printroom.web.codec import CodecServer
from printroom.web.temporal import TemporalPages
from printroom.worker.main import connect

log = logging.getLogger("printroom.web")


class WebRefused(Exception):
    """`printroom web` cannot start; the message names the setting to fix."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller's stop event ends it; uvicorn's own handlers would take Ctrl-C from printroom dev


def listen(settings: Settings) -> socket.socket:
    web = settings.web
    sock = socket.socket(socket.AF_INET6 if ":" in web.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((web.host, web.port))
    except OSError as error:
        sock.close()
        raise WebRefused(
            f"cannot listen on {web.host}:{web.port} ({error.strerror}); stop what holds it or set web.port "
            f"(PRINTROOM_WEB__PORT={web.port + 1})"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_web(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Run until `stop` is set. Refuses to start without a usable secret, naming the setting."""
    try:
        signer = settings.web.signer()
    except (OSError, ValueError) as error:
        raise WebRefused(f"web secret: {error}") from None
    if signer is None:
        raise WebRefused(
            "no secret to check links with: set PRINTROOM_WEB__SECRET or web.secret_file (at least 32 bytes; "
            "the worker signs the links in emails with the same secret)"
        )
    try:
        codec = CodecServer(settings)
    except (OSError, ValueError) as error:
        raise WebRefused(f"codec server: {error}") from None
    temporal = TemporalPages(lambda: _given(client) if client is not None else connect(settings.temporal))
    sock = listen(settings)
    public = settings.web.public_url or "unset: emails carry no links to it (web.public_url)"
    log.info("answering on http://%s:%s; public address %s", settings.web.host, settings.web.port, public)
    log.info("codec server %s", codec.state)
    config = uvicorn.Config(
        build_app(settings, signer, temporal, codec=codec), lifespan="off", log_level="warning", access_log=False, server_header=False,
        # A page is small and quick: a few hundred at once is plenty, and Ctrl-C never waits long for a slow client.
        limit_concurrency=200, timeout_keep_alive=5, timeout_graceful_shutdown=5,
        # Headers within HEADER_TIMEOUT, and at most web.max_connections_per_client per address: slow clients
        # cannot take the 200 for themselves.
        http=guarded_h11(settings.web.max_connections_per_client),
    )  # fmt: skip
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
    await temporal.close()
    sock.close()


async def _given(client: Client) -> Client:
    return client
