"""The delivery record in PostgreSQL, for workers on several hosts: the same contract as the directory one (which
Message-IDs the server accepted; which sends are under way, and whose claim went stale), with the database's clock
and row locks instead of a shared file system's."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from printroom.activities.deliveries import CLAIM_ALIVE, Accepted, ClaimHeld, RecordUnavailable

log = logging.getLogger("printroom.deliveries")

T = TypeVar("T")

SCHEMA = """
SELECT pg_advisory_xact_lock(7370621);  -- two workers starting at once: one creates, the other waits and sees them
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
NEW_CLAIM = "INSERT INTO printroom_claims (message_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1"
# A call waits this long for a connection; past it the record is "unavailable" and the email is retried later.
CONNECT_TIMEOUT = 5.0
# No statement, lock or half-open connection holds a send for long: a host that died holding a claim's row lock,
# or a failover leaving a dead TCP connection, is an unavailable record within seconds, not fifteen minutes.
SESSION = {
    "connect_timeout": str(int(CONNECT_TIMEOUT)),
    "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
    "tcp_user_timeout": "15000",
    "options": "-c lock_timeout=5s -c statement_timeout=10s -c idle_in_transaction_session_timeout=30s",
}  # fmt: skip


def shown(url: str) -> str:
    """The URL for logs and messages: never its password, in the user part or the query string."""
    url = re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


class PostgresDeliveryLog:
    """Shared by every worker of the print room through one database; tables created on first use."""

    def __init__(self, url: str, connections: int = 10) -> None:
        """`connections`: the sends that may run at once (smtp.max_connections); each holds one while it calls."""
        self.url = url
        self._pool = ConnectionPool(
            url, min_size=0, max_size=connections + 2, open=False, timeout=CONNECT_TIMEOUT, kwargs={**SESSION, "autocommit": True},
            check=ConnectionPool.check_connection,  # a connection the server dropped (a restart) is replaced, not used
            reconnect_timeout=CONNECT_TIMEOUT,
        )  # fmt: skip
        self._ready = False
        self._opened = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresDeliveryLog({shown(self.url)!r})"

    def check(self) -> None:
        """Reach the database (a connection of its own, not the pool's backed-off retries) and make the tables;
        RecordUnavailable says why not."""
        try:
            with psycopg.connect(make_conninfo(self.url, **SESSION), autocommit=True) as conn:
                self._prepare(conn)
        except psycopg.Error as error:
            raise RecordUnavailable(f"the delivery record at {shown(self.url)} cannot be reached: {_first_line(error)}") from None

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """The tables, made once by whichever worker comes first; a user who may only read and write rows is fine
        once they exist."""
        if not self._ready:
            row = conn.execute("SELECT to_regclass('printroom_deliveries') IS NOT NULL AND to_regclass('printroom_claims') IS NOT NULL").fetchone()
            if not (row and row[0]):
                with conn.transaction():
                    conn.execute(SCHEMA)
            self._ready = True

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
                if conn.execute(NEW_CLAIM, (message_id,)).fetchone():
                    return False
                row = conn.execute(
                    "SELECT extract(epoch FROM now() - renewed_at) FROM printroom_claims WHERE message_id = %s FOR UPDATE",
                    (message_id,),
                ).fetchone()
                if row is None:  # released meanwhile: taken fresh, unless another is quicker
                    if not conn.execute(NEW_CLAIM, (message_id,)).fetchone():
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
                    "ON CONFLICT (message_id) DO UPDATE SET accepted = EXCLUDED.accepted, subject = EXCLUDED.subject, "
                    "recorded_at = now()",
                    (message_id, json.dumps(everyone), subject),
                )
                conn.execute("DELETE FROM printroom_claims WHERE message_id = %s", (message_id,))

        self._run(write)

    def prune(self, older_than_days: float = 30) -> int:
        def delete(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                gone = conn.execute(
                    "DELETE FROM printroom_deliveries WHERE recorded_at < now() - make_interval(days => %s)", (int(older_than_days),)
                ).rowcount
                gone += conn.execute(
                    "DELETE FROM printroom_claims WHERE renewed_at < now() - make_interval(days => %s)", (int(older_than_days),)
                ).rowcount
            return gone

        return self._run(delete)

    def close(self) -> None:
        """At the end of the process only: a closed pool cannot be opened again (a client-level plugin serves
        several workers, and cancelled sends may still be finishing their records when one stops)."""
        if self._opened:
            self._pool.close()

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """One call on a pooled connection (autocommit unless the work opens a transaction); a database that cannot
        be reached is RecordUnavailable, a passing failure: the email is retried, never sent unrecorded."""
        try:
            with self._lock:
                if not self._opened:
                    self._pool.open(wait=False)
                    self._opened = True
            with self._pool.connection() as conn:
                self._prepare(conn)
                return work(conn)
        except (psycopg.Error, PoolTimeout) as error:  # every database error: a failover's read-only standby too
            raise RecordUnavailable(f"the delivery record at {shown(self.url)} cannot be used: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
