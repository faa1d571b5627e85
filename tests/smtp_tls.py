"""A relay as print rooms have: aiosmtpd with STARTTLS (a trustme certificate) and AUTH, counting at the server what
a client did with its connections (opened, logged in, RSET, QUIT, closed) and what arrived, by Message-ID."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from printroom.settings import SmtpSettings
from tests.conftest import free_port

USER, PASSWORD = "relay-user-7q", "s3cret-Pa55word"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    # handled=False: aiosmtpd answers 235 or 535 itself (True would mean we already replied).
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def server_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context


class Relay:
    """What the server saw, and the faults a test asks of it (each applies to the next command it names)."""

    def __init__(self) -> None:
        self.password = PASSWORD
        self.opened = self.logins = self.rsets = self.quits = 0
        self.open: set[RelaySession] = set()
        self.message_ids: list[str] = []
        self.refused_421 = 0
        self.limit_per_connection: int | None = None  # then 421 at the MAIL after that many messages
        self.close_at_next_rset = False
        self.answer_421_to_next_data = False
        self.controller: Controller | None = None

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = auth_data.login == USER.encode() and auth_data.password == self.password.encode()
        self.logins += ok
        return AuthResult(success=ok, handled=False)

    def drop_every_connection(self) -> None:
        """As a relay restarting, or timing out idle sessions: closed without a word."""
        assert self.controller is not None
        for session in list(self.open):
            self.controller.loop.call_soon_threadsafe(session.drop)

    async def handle_RSET(self, server: RelaySession, session: Any, envelope: Any) -> str:
        self.rsets += 1
        if self.close_at_next_rset:  # closed by the server as the client speaks again: no reply
            self.close_at_next_rset = False
            server.drop()
        return "250 OK"

    async def handle_QUIT(self, server: RelaySession, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def handle_MAIL(self, server: RelaySession, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.limit_per_connection is not None and server.messages >= self.limit_per_connection:
            return self._closing(server, "421 4.7.0 too many messages on this connection")
        envelope.mail_from, envelope.mail_options = address, options
        return "250 OK"

    async def handle_DATA(self, server: RelaySession, session: Any, envelope: Any) -> str:
        if self.answer_421_to_next_data:
            self.answer_421_to_next_data = False
            return self._closing(server, "421 4.3.2 shutting down, try again later")
        assert session.ssl is not None, "a message over a connection in clear"
        self.message_ids.append(str(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"]))
        server.messages += 1
        return "250 OK"

    def _closing(self, server: RelaySession, reply: str) -> str:
        self.refused_421 += 1
        server.loop.call_soon(server.drop)  # after the reply is written
        return reply


class RelaySession(SMTP):
    """One connection as the server sees it (STARTTLS makes aiosmtpd call connection_made twice: counted once)."""

    relay: Relay
    messages = 0
    counted = False

    def connection_made(self, transport: Any) -> None:
        if not self.counted:
            self.counted = True
            self.relay.opened += 1
            self.relay.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.relay.open.discard(self)
        super().connection_lost(error)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RelayController(Controller):
    def __init__(self, relay: Relay, **kwargs: Any) -> None:
        super().__init__(relay, authenticator=relay.authenticate, **kwargs)
        self.relay = relay
        relay.controller = self

    def factory(self) -> SMTP:
        session = RelaySession(self.handler, **self.SMTP_kwargs)
        session.relay = self.relay
        return session


def serve(relay: Relay, context: ssl.SSLContext, port: int) -> RelayController:
    """STARTTLS required, AUTH required, as a submission port (587) is run."""
    controller = RelayController(relay, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True, auth_required=True)
    controller.start()
    relay.opened = 0  # aiosmtpd's own connection, made to see that the server answers
    return controller


@pytest.fixture
def relay(server_context: ssl.SSLContext) -> Iterator[tuple[Relay, int]]:
    relay = Relay()
    controller = serve(relay, server_context, free_port())
    yield relay, controller.port
    controller.stop()


def relay_settings(port: int, ca_file: Path, **fields: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="starttls", ca_file=ca_file, username=USER, password=PASSWORD,
                        timeout_seconds=5, **fields)  # fmt: skip
