"""SMTP sessions kept open between emails (issue 23): one TCP, TLS and AUTH handshake for many emails instead of one
each. The pool only keeps and closes sessions; opening and securing them stays with the transport, so every
session, pooled or not, passes the same TLS and certificate checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiosmtplib

from printroom.settings import SmtpSettings

# A QUIT off the sending path (idle, worker shutdown): a polite goodbye, never a reason to hold a shutdown up.
QUIT_TIMEOUT = 2.0


@dataclass(eq=False)
class Session:
    """A connected, secured and logged-in client, and how many messages the server accepted on it."""

    client: aiosmtplib.SMTP
    messages: int = 0


class SessionPool:
    """A worker's idle sessions, newest taken first (under little load the older ones idle out). Closed after
    `idle_seconds` unused, after `max_messages_per_connection` messages, or when the connection is gone (a 421, a
    drop). The worker closes the pool at shutdown; it can be used again afterwards (another worker on the plugin).
    How many are open at once is bounded by the transport's max_connections slots, not here: an idle session is
    taken by whoever holds a slot, so a new one opens only when every open one is in use."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.idle_seconds = settings.idle_seconds
        self.max_messages = settings.max_messages_per_connection
        self.keeps = settings.reuses_connections
        self._idle: list[tuple[Session, asyncio.TimerHandle]] = []
        self._quitting: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def take(self) -> Session | None:
        """The newest idle session still connected, or None: then the caller opens one (the whole handshake)."""
        self._forget_another_loops()
        while self._idle:
            session, expiry = self._idle.pop()
            expiry.cancel()
            if session.client.is_connected:  # one the server closed while idle is seen here, without a word sent
                return session
        return None

    async def give_back(self, session: Session, *, clean: bool) -> None:
        """Keep a session whose last transaction ended in a reply (its state is known) and that may send more;
        QUIT one that has sent its share; drop one whose state is unknown (a cut, a timeout)."""
        client = session.client
        if not (clean and client.is_connected):
            client.close()
            return
        if not (self.keeps and session.messages < self.max_messages):
            await quit_quietly(client)
            return
        self._forget_another_loops()
        loop = self._loop = asyncio.get_running_loop()
        self._idle.append((session, loop.call_later(self.idle_seconds, self._expire, session)))

    def _expire(self, session: Session) -> None:
        """Idle for `idle_seconds`: QUIT, as a relay would rather be told than time the session out itself."""
        for entry in self._idle:
            if entry[0] is session:
                self._idle.remove(entry)
                self._quit_later(session)
                return

    def _quit_later(self, session: Session) -> None:
        task = asyncio.ensure_future(quit_quietly(session.client, timeout=QUIT_TIMEOUT))
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)

    async def close(self) -> None:
        """At worker shutdown: QUIT every idle session, and wait for the QUITs already under way."""
        self._forget_another_loops()
        while self._idle:
            session, expiry = self._idle.pop()
            expiry.cancel()
            self._quit_later(session)
        if self._quitting:
            await asyncio.gather(*self._quitting, return_exceptions=True)

    def _forget_another_loops(self) -> None:
        """Sessions belong to the event loop that opened them: a transport used again under another loop (one
        asyncio.run after another) drops them instead of using them from the wrong loop."""
        running = asyncio.get_running_loop()
        if self._loop is None or self._loop is running:
            return
        for session, expiry in self._idle:
            expiry.cancel()
            try:
                session.client.close()
            except RuntimeError:  # that loop is closed, and its sockets with it
                pass
        self._idle.clear()
        self._quitting.clear()
        self._loop = running


async def quit_quietly(client: aiosmtplib.SMTP, timeout: float | None = None) -> None:
    """The message is accepted or refused by now; a failing QUIT changes neither."""
    if client.is_connected:
        try:
            await (client.quit(timeout=timeout) if timeout is not None else client.quit())
        except (aiosmtplib.SMTPException, OSError):
            client.close()
