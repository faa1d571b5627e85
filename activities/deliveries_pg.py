"""The delivery record in PostgreSQL, for workers on several hosts: the same contract as the directory one (which
Message-IDs the server accepted; which sends are under way, and whose claim went stale), with the database's clock
and row locks instead of a shared file system's."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from printroom.activities.deliveries import CLAIM_ALIVE, Accepted, ClaimHeld, RecordUnavailable

log = logging.getLogger("printroom.deliveries")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS printroom_deliveries (
    message_id text PRIMARY KEY,
    accepted jsonb NOT NULL,
    subject text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS printroom_claims (
    message_id text PRIMARY KEY,
    renewed_at timestamptz NOT NULL DEFAULT now()
);
"""
# A call waits this long for a connection; past it the record is "unavailable" and the email is retried later.
CONNECT_TIMEOUT = 5.0


def shown(url: str) -> str:
    """The URL for logs and messages: never its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


class PostgresDeliveryLog:
    """Shared by every worker of the print room through one database; tables created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = ConnectionPool(
            url, min_size=0, max_size=4, open=False, timeout=CONNECT_TIMEOUT, kwargs={"connect_timeout": int(CONNECT_TIMEOUT)}
        )
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresDeliveryLog({shown(self.url)!r})"

    def check(self) -> None:
        """Reach the database and make the tables; RecordUnavailable says why not."""
        self._run(lambda conn: None)

    def accepted(self, message_id: str) -> Accepted | None:
        def read(conn: psycopg.Connection[Any]) -> Accepted | None:
            row = conn.execute("SELECT accepted, subject FROM printroom_deliveries WHERE message_id = %s", (message_id,)).fetchone()
            return None if row is None else Accepted(message_id=message_id, accepted=list(row[0]), subject=row[1])

        return self._run(read)

    def claim(self, message_id: str) -> bool:
        """As DeliveryLog.claim: False for a fresh claim, True when a dead one was taken over, ClaimHeld when a live
        one is there. The row lock makes the take-over atomic between hosts; the ages are the database's."""

        def take(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                if conn.execute(
                    "INSERT INTO printroom_claims (message_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1", (message_id,)
                ).fetchone():
                    return False
                row = conn.execute(
                    "SELECT extract(epoch FROM now() - renewed_at) FROM printroom_claims WHERE message_id = %s FOR UPDATE",
                    (message_id,),
                ).fetchone()
                if row is None:  # released meanwhile: taken fresh, unless another is quicker
                    inserted = conn.execute(
                        "INSERT INTO printroom_claims (message_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1", (message_id,)
                    ).fetchone()
                    if not inserted:
                        raise ClaimHeld(message_id, 0)
                    return False
                age = float(row[0])
                if age < CLAIM_ALIVE:
                    raise ClaimHeld(message_id, age)
                conn.execute("UPDATE printroom_claims SET renewed_at = now() WHERE message_id = %s", (message_id,))
                return True

        return self._run(take)

    def keep_alive(self, message_id: str) -> None:
        """Best effort: a missed renewal is made up a few seconds later; a database away for longer than
        CLAIM_ALIVE makes the claim look dead, which the next attempt reports as a possible duplicate."""
        try:
            self._run(lambda conn: conn.execute("UPDATE printroom_claims SET renewed_at = now() WHERE message_id = %s", (message_id,)))
        except RecordUnavailable as error:
            log.warning("could not keep the claim of %s alive: %s", message_id, error)

    def abandon(self, message_id: str) -> None:
        self._run(
            lambda conn: conn.execute(
                "UPDATE printroom_claims SET renewed_at = renewed_at - make_interval(secs => %s) WHERE message_id = %s",
                (CLAIM_ALIVE + 1, message_id),
            )
        )

    def release(self, message_id: str) -> None:
        self._run(lambda conn: conn.execute("DELETE FROM printroom_claims WHERE message_id = %s", (message_id,)))

    def record(self, message_id: str, everyone: list[str], subject: str) -> None:
        """Raises RecordUnavailable (an OSError) if it cannot be written: the caller says so in the order's notes."""

        def write(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO printroom_deliveries (message_id, accepted, subject) VALUES (%s, %s, %s) "
                    "ON CONFLICT (message_id) DO UPDATE SET accepted = EXCLUDED.accepted, recorded_at = now()",
                    (message_id, json.dumps(everyone), subject),
                )
                conn.execute("DELETE FROM printroom_claims WHERE message_id = %s", (message_id,))

        self._run(write)

    def prune(self, older_than_days: float = 30) -> int:
        def delete(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                gone = conn.execute(
                    "DELETE FROM printroom_deliveries WHERE recorded_at < now() - make_interval(days => %s)", (older_than_days,)
                ).rowcount
                gone += conn.execute(
                    "DELETE FROM printroom_claims WHERE renewed_at < now() - make_interval(days => %s)", (older_than_days,)
                ).rowcount
            return gone

        return self._run(delete)

    def close(self) -> None:
        self._pool.close()

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """One call on a pooled connection (autocommit unless the work opens a transaction); a database that cannot
        be reached is RecordUnavailable, a passing failure: the email is retried, never sent unrecorded."""
        try:
            if self._pool.closed:
                self._pool.open(wait=False)
            with self._connection() as conn:
                if not self._ready:
                    conn.execute(SCHEMA)
                    self._ready = True
                return work(conn)
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise RecordUnavailable(f"the delivery record at {shown(self.url)} cannot be reached: {_first_line(error)}") from None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            conn.autocommit = True
            yield conn


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
