"""Connections that cannot lock others out: uvicorn's HTTP/1.1 protocol with a deadline for a request's headers, a
deadline for the whole connection, an end to a request whose body the answer left unread, and a limit on the
connections one client holds (an IPv4 address, or an IPv6 /64: one host's share). Without them, 200 half-open
connections (uvicorn's whole `limit_concurrency`) answered every visitor with a bare 503, and a request that declared a
body and then sent one byte held its connection for ever (uvicorn's keep-alive timer stops at every byte received)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# A request's headers arrive within this long of the connection (or of the previous answer on a kept-alive one).
HEADER_TIMEOUT = 10.0
# A connection lives at most this long, whatever it does: then it ends after the answer in flight, if any ...
CONNECTION_DEADLINE = 120.0
# ... which has this long more (a decision waits up to 20 s for Temporal).
LAST_ANSWER_GRACE = 30.0
# After an answer given before its request's body was read, the rest of the body is read and dropped this long (so
# that the client, still sending, reads the answer rather than a reset), then the connection ends.
LINGER = 2.0
TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
TOO_MANY = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def client_key(address: str) -> str:
    """Whose connection this is, for the per-client limit: an IPv4 address (also as IPv6-mapped, from a dual-stack
    listener), or the /64 of an IPv6 one, since one host gets a whole /64 and could use a new address per connection."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address  # a Unix socket's path, say: one client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def guarded_h11(per_client: int) -> type[H11Protocol]:
    """The protocol class for one server: its own count of connections per client."""
    held: Counter[str] = Counter()

    class Guarded(H11Protocol):
        _address: str | None = None
        _deadline: asyncio.TimerHandle | None = None
        _lifetime: asyncio.TimerHandle | None = None
        _lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = client_key(self.client[0]) if self.client else None
            if address is not None and held[address] >= per_client:
                transport.write(TOO_MANY)
                transport.close()
                return
            if address is not None:
                self._address = address
                held[address] += 1
            self._lifetime = self.loop.call_later(CONNECTION_DEADLINE, self._expire)
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            if self._lifetime is not None:
                self._lifetime.cancel()
                self._lifetime = None
            if self._address is not None:
                held[self._address] -= 1
                if held[self._address] <= 0:
                    del held[self._address]
                self._address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # the rest of a body nobody reads
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the headers are in: the app's own timeouts take over
                self._stop_waiting()

        def on_response_complete(self) -> None:
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                self._linger()  # answered before its body was read (a refusal, a GET with a body): no next request
                return
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_headers()  # a kept-alive connection's next request gets the same deadline

        def _linger(self) -> None:
            """Ends a connection whose request body was not read: the answer is sent, then the end of our side;
            what the client still sends is dropped for LINGER, then the connection is closed."""
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self._lingering = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.flow.resume_reading()
            self._stop_waiting()
            self._deadline = self.loop.call_later(LINGER, self.transport.close)

        def _expire(self) -> None:
            """The connection's time is up: closed now if no answer is being made, else after that answer (and at
            the latest LAST_ANSWER_GRACE later)."""
            self._lifetime = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete or self._lingering:
                self.transport.close()
                return
            self.cycle.keep_alive = False
            self._lifetime = self.loop.call_later(LAST_ANSWER_GRACE, self.transport.close)

        def _await_headers(self) -> None:
            self._stop_waiting()
            self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

        def _stop_waiting(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(TOO_SLOW)
                self.transport.close()

    return Guarded
