"""Connections that cannot lock others out: uvicorn's HTTP/1.1 protocol with a deadline for a request's headers and a
limit on the connections one client address holds. Without them, 200 half-open connections (uvicorn's whole
`limit_concurrency`) answered every visitor with a bare 503."""

from __future__ import annotations

import asyncio
from collections import Counter

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# A request's headers arrive within this long of the connection (or of the previous answer on a kept-alive one).
HEADER_TIMEOUT = 10.0
TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
TOO_MANY = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def guarded_h11(per_client: int) -> type[H11Protocol]:
    """The protocol class for one server: its own count of connections per client address."""
    held: Counter[str] = Counter()

    class Guarded(H11Protocol):
        _address: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if address is not None and held[address] >= per_client:
                transport.write(TOO_MANY)
                transport.close()
                return
            if address is not None:
                self._address = address
                held[address] += 1
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            if self._address is not None:
                held[self._address] -= 1
                if held[self._address] <= 0:
                    del held[self._address]
                self._address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the headers are in: the app's own timeouts take over
                self._stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_headers()  # a kept-alive connection's next request gets the same deadline

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
