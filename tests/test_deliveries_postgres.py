"""The delivery record in a real PostgreSQL server (Debian's package, started here): the directory's contract
between two hosts, and the database down at a worker's start and during a send: nothing sent unrecorded,
nothing sent twice."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from printroom.activities.deliveries import ClaimHeld, RecordUnavailable
from printroom.activities.deliveries_pg import PostgresDeliveryLog, shown
from printroom.activities.email import EmailActivities
from printroom.models import Order, StatusEmailRequest
from printroom.settings import DeliverySettings, Settings, SettingsError, load_settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, free_port, messages_to, sample_order
from tests.postgres_server import PostgresServer, ensure_postgres_installed


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    if why := ensure_postgres_installed():
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    server = PostgresServer(free_port())
    server.start()
    yield server
    server.remove()


@pytest.fixture
def shared(settings: Settings, postgres: PostgresServer) -> Settings:
    return settings.model_copy(update={"deliveries": DeliverySettings(url=postgres.url)})


def request(trigger: str = "order_shipped") -> StatusEmailRequest:
    return StatusEmailRequest(order=Order.model_validate(sample_order()), email_trigger=trigger, status="shipped")


async def send(settings: Settings, req: StatusEmailRequest):
    emails = EmailActivities.from_settings(settings)  # a worker of its own: another host, the same database
    try:
        return await ActivityEnvironment().run(emails.send_status_email, req)
    finally:
        emails.deliveries.close()


def test_two_hosts_share_claims_and_records_by_the_databases_clock(postgres: PostgresServer):
    one, other = PostgresDeliveryLog(postgres.url), PostgresDeliveryLog(postgres.url)
    msg_id = f"<{os.urandom(4).hex()}.order_shipped.1.customer@example.com>"
    try:
        assert one.accepted(msg_id) is None
        assert one.claim(msg_id) is False
        with pytest.raises(ClaimHeld):  # the first host may still be sending
            other.claim(msg_id)
        one.abandon(msg_id)  # it stopped without knowing whether the server took it
        assert other.claim(msg_id) is True  # taken over, and reported as a possible duplicate
        other.record(msg_id, ["müller@bücher.example"], "Ihr Auftrag")
        assert one.accepted(msg_id).accepted == ["müller@bücher.example"]
        assert one.claim(msg_id) is False  # the record removed the claim; a new attempt would find the record first
        one.release(msg_id)
    finally:
        one.close()
        other.close()


async def test_an_email_sent_by_one_host_is_not_sent_again_by_another(shared: Settings, smtp):
    req = request()
    first = await send(shared, req)
    again = await send(shared, req)  # the retry runs on another worker, on another host
    assert len(smtp.messages) == 1
    assert again.notes == [f"order_shipped: {first.sent[0].message_id} was accepted by the server on an earlier attempt; not sent again"]


async def test_the_database_down_during_a_send_retries_the_email_and_never_sends_it_twice(shared: Settings, postgres, smtp):
    req = request()
    postgres.stop()
    try:
        with pytest.raises(ApplicationError) as waiting:
            await send(shared, req)
        assert waiting.value.type == "DeliveryRecordUnavailable" and not waiting.value.non_retryable
        assert f"the delivery record at {postgres.url} cannot be used" in waiting.value.message
        assert smtp.messages == []  # nothing goes out that could not be recorded
    finally:
        postgres.start()
    await send(shared, req)
    await send(shared, req)
    assert len(smtp.messages) == 1


async def test_a_worker_started_while_its_database_is_down_says_so_and_sends_nothing_until_it_is_up(
    client, shared: Settings, postgres, smtp, task_queue, caplog
):
    postgres.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="printroom.worker"):
            async with build_worker(client, shared, task_queue=task_queue):
                order = sample_order()
                handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
                await eventually(lambda: "waiting (nothing is sent until it answers)" in caplog.text, what="the worker saying it waits")
                await asyncio.sleep(2)
                assert smtp.messages == []  # the worker does not poll: the order waits at the server
                postgres.start()
                await eventually(lambda: messages_to(smtp, "marie@example.org"), timeout=30, what="the order's email once the database is up")
                await handle.signal("change_status", {"trigger": "cancel"})
                await handle.result()
    finally:
        if not os.path.exists(postgres.data / "postmaster.pid"):
            postgres.start()
    assert f"the delivery record at {postgres.url} cannot be reached" in caplog.text


def test_the_databases_password_is_never_in_the_settings_file_or_a_message(tmp_path):
    toml = tmp_path / "printroom.toml"
    for url in ("postgresql://printroom:s3cret@db.example:5432/printroom", "postgresql://printroom@db.example/printroom?sslmode=require&password=s3cret"):
        toml.write_text(f'[deliveries]\nurl = "{url}"\n')
        with pytest.raises(SettingsError, match="deliveries.url must not carry a password in the file in clear; give it in PGPASSWORD"):
            load_settings(toml)
    assert shown("postgresql://printroom:s3cret@db.example:5432/printroom") == "postgresql://printroom:***@db.example:5432/printroom"
    assert shown("postgresql://printroom@db.example/printroom?password=s3cret&x=1") == "postgresql://printroom@db.example/printroom?password=***&x=1"
    unreachable = PostgresDeliveryLog(f"postgresql://printroom:s3cret@127.0.0.1:{free_port()}/printroom")
    with pytest.raises(RecordUnavailable) as error:
        unreachable.check()
    assert "s3cret" not in str(error.value) and "printroom:***@127.0.0.1" in str(error.value)
    unreachable.close()


async def test_a_database_that_refuses_writes_is_a_passing_failure_and_nothing_is_sent(shared: Settings, postgres, smtp):
    """A failover to a read-only standby: not an outage by psycopg's classes, but the record cannot be written all
    the same, so nothing may be sent (it could not be recorded) and the email is retried, never held as a bug."""
    import psycopg

    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute("ALTER DATABASE postgres SET default_transaction_read_only = on")
    try:
        with pytest.raises(ApplicationError) as waiting:
            await send(shared, request())
        assert waiting.value.type == "DeliveryRecordUnavailable" and not waiting.value.non_retryable
        assert "read-only transaction" in waiting.value.message and smtp.messages == []
    finally:
        with psycopg.connect(postgres.url, autocommit=True, options="-c default_transaction_read_only=off") as admin:
            admin.execute("ALTER DATABASE postgres SET default_transaction_read_only = off")
    await send(shared, request())
    assert len(smtp.messages) == 1


def test_workers_starting_together_on_an_empty_database_all_get_the_tables(postgres: PostgresServer):
    import psycopg
    from concurrent.futures import ThreadPoolExecutor

    name = f"fresh_{os.urandom(4).hex()}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.url.rsplit("/", 1)[0] + "/" + name
    logs = [PostgresDeliveryLog(url) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda log: log.check(), logs))  # none raises: one creates, the others wait and find them
    assert logs[0].accepted("<none@example.com>") is None


def test_pooled_connections_survive_a_database_restart(postgres: PostgresServer):
    log = PostgresDeliveryLog(postgres.url)
    msg_id = f"<{os.urandom(4).hex()}.order_shipped.1.customer@example.com>"
    log.record(msg_id, ["marie@example.org"], "Expédiée")
    postgres.stop()
    postgres.start()
    assert log.accepted(msg_id).accepted == ["marie@example.org"]  # the dropped connection replaced, not failed on
    log.close()


async def test_a_worker_waiting_for_its_database_stops_at_once_when_asked(client, shared: Settings, postgres, task_queue, caplog):
    postgres.stop()
    try:
        worker = build_worker(client, shared, task_queue=task_queue)
        running = asyncio.create_task(worker.run())
        with caplog.at_level(logging.WARNING, logger="printroom.worker"):
            await eventually(lambda: "waiting (nothing is sent until it answers)" in caplog.text, what="the worker waiting")
        await asyncio.wait_for(worker.shutdown(), 10)  # Ctrl-C, SIGTERM: no hang
        await asyncio.wait_for(running, 10)
    finally:
        postgres.start()
