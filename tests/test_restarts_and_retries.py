"""What a print room meets in its first months, on a real Temporal dev server and real SMTP servers: an order started
again under the same id, an email waiting for its PDF while the next one goes, a cost centre whose mail server is
down as it continues as new. Each email arrives once, and nothing is reported sent that was not."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from printroom.cli.capture import SmtpCapture
from printroom.models import HOLD_DRAFTS, ApprovalOutcome, CostCentreBook, CostCentreTerms, OrderState, Spending, SpendingRecord
from printroom.settings import CostCentreSettings, Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, free_port, messages_to, order_state, sample_order, task_settled, with_smtp_port


# A job whose final PDF order_completed attaches, from the store `attaching_a_pdf` makes (the file not there yet).
JOB_WITH_A_PDF = [{"id": "J1", "name": "Flyers", "quantity": 500, "document": "PO/J1/final.pdf"}]


def attaching_a_pdf(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings under which order_completed attaches the job's final PDF, and the document store it is read from."""
    store = tmp_path / "documents"
    (store / "PO" / "J1").mkdir(parents=True)
    emails = type(settings.emails).model_validate({"order_completed": {"attachments": ["document"]}})
    return settings.model_copy(update={"emails": emails, "documents": settings.documents.model_copy(update={"root": store})}), store


async def start(client: Client, task_queue: str, order: dict[str, Any]) -> WorkflowHandle[Any, OrderState]:
    return await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)


def message_ids(smtp: SmtpCapture, address: str, subject_part: str) -> list[str]:
    return [m.parsed()["Message-ID"] for m in messages_to(smtp, address) if subject_part in m.parsed()["Subject"]]


async def test_the_same_order_started_three_times_sends_each_runs_emails_once(client, dev_worker, smtp):
    """The README's own advice for a stuck order is "cancel it and start it again": each run is a new order for
    its emails (never taken for the earlier run's and skipped), and all of them stay in one thread."""
    order = sample_order(language="en")
    runs: list[OrderState] = []
    for run in range(1, 4):
        handle = await start(client, dev_worker.task_queue, order)
        await eventually(lambda: len(_subjects(smtp, "We have received")) == run, what=f"run {run}'s order_received")
        await handle.signal("change_status", {"trigger": "cancel"})
        runs.append(await handle.result())
    received = [m.parsed() for m in messages_to(smtp, "marie@example.org") if "PO-" in m.parsed()["Subject"]]
    assert len(received) == 6  # order_received and order_cancelled, once each, for each of the three runs
    assert len({m["Message-ID"] for m in received}) == 6
    assert len({m["References"] for m in received}) == 1  # one thread: every run replies to the same root
    for state in runs:  # each run lists what its own server accepted: two emails to the customer, two to operators
        assert sorted(e.email_trigger for e in state.emails_sent if e.audience == "customer") == ["order_cancelled", "order_received"]
        assert not any("not sent again" in note for note in state.email_notes)
    assert len({e.message_id for state in runs for e in state.emails_sent}) == len([e for state in runs for e in state.emails_sent])


async def test_an_over_budget_order_started_again_asks_its_approvers_again(client, dev_worker, smtp):
    """Reproduced in issue 20: cancel an over-budget order and start the same JSON again; the approvers got no
    second request (the delivery record took it for the first run's), and the order stalled for good."""
    order = sample_order(language="en", budget={"limit": "100.00", "approvers": ["müller@bücher.example"]})
    approver = "müller@xn--bcher-kva.example"
    first = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: message_ids(smtp, approver, "Approval needed"), what="the first run's request")
    await first.signal("change_status", {"trigger": "cancel"})
    await first.result()
    second = await start(client, dev_worker.task_queue, order)
    requests = await eventually(lambda: len(message_ids(smtp, approver, "Approval needed")) == 2 and message_ids(smtp, approver, "Approval needed"),
                                what="the second run's request")  # fmt: skip
    assert requests[0] != requests[1]
    await second.signal("approve", {"by": "müller@bücher.example"})
    await eventually(lambda: _status(second, "submitted"), what="the second run approved")
    await second.signal("change_status", {"trigger": "cancel"})
    await second.result()


async def test_a_restart_while_the_first_runs_email_is_still_retried_sends_the_second_runs_once(client, settings, task_queue):
    """The mail server is down; the first run's order_received is being retried when the order is cancelled from
    Temporal and started again. When the server is back, the second run's email arrives, once; the first run's
    never does (its workflow has ended)."""
    port = free_port()
    async with build_worker(client, with_smtp_port(settings, port), task_queue=task_queue):
        order = sample_order(language="en")
        first = await start(client, task_queue, order)
        await eventually(lambda: _pending(first, "order_received"), what="the first run's email retried")
        await first.cancel()
        await asyncio.wait_for(_ended(first), 20)
        second = await start(client, task_queue, order)
        await eventually(lambda: _pending(second, "order_received"), what="the second run's email retried")
        with SmtpCapture(port=port) as back:
            await eventually(lambda: len(messages_to(back, "marie@example.org")) == 1, timeout=40, what="the second run's email")
            await asyncio.sleep(2)  # a first run's leftover would arrive now
            assert len(messages_to(back, "marie@example.org")) == 1
            state = await order_state(second)
            (sent,) = [e for e in state.emails_sent if e.audience == "customer"]
            assert sent.message_id == messages_to(back, "marie@example.org")[0].parsed()["Message-ID"]
            await second.signal("change_status", {"trigger": "cancel"})
            await second.result()


async def test_an_email_waiting_for_its_pdf_holds_up_nothing_else_and_goes_once_the_pdf_is_there(client, settings, smtp, task_queue, tmp_path):
    """order_completed attaches the job's final PDF, which is not in the store yet: it is retried on its own, and
    order_shipped, the operators' notices with it, go at once; once the PDF is there, order_completed goes too."""
    attaching, store = attaching_a_pdf(settings, tmp_path)
    async with build_worker(client, attaching, task_queue=task_queue):
        order = sample_order(language="en", jobs=JOB_WITH_A_PDF)
        handle = await start(client, task_queue, order)
        for trigger in ("accept", "start_production", "complete"):
            await handle.signal("change_status", {"trigger": trigger, "by": "Léa"})
        await eventually(lambda: _pending(handle, "order_completed"), what="order_completed waiting for its PDF")
        await handle.signal("change_status", {"trigger": "ship", "by": "Léa"})
        shipped = await eventually(lambda: _subjects(smtp, "on its way"), timeout=10, what="order_shipped, not held up")
        assert len(shipped) == 1 and not _subjects(smtp, "is ready")
        state = await order_state(handle)
        (waiting,) = state.emails_pending
        assert (waiting.email_trigger, waiting.status) == ("order_completed", "sending")
        assert "PO/J1/final.pdf is not in the document store" in waiting.last_error
        (store / "PO" / "J1" / "final.pdf").write_bytes(b"%PDF-1.4 final")
        await eventually(lambda: _subjects(smtp, "is ready"), timeout=40, what="order_completed, once its PDF is there")
        state = await asyncio.wait_for(handle.result(), 20)  # shipped, and nothing left to send: the order closes
        assert state.emails_pending == [] and state.emails_failed == []
        customer = [e.email_trigger for e in state.emails_sent if e.audience == "customer"]
        assert customer.count("order_completed") == customer.count("order_shipped") == 1
        assert customer.index("order_shipped") < customer.index("order_completed")  # the one waiting went last
        assert len(_subjects(smtp, "is ready")) == len(_subjects(smtp, "on its way")) == 1
        (ready,) = [m for m in messages_to(smtp, "marie@example.org") if "is ready" in m.parsed()["Subject"]]
        assert [a.get_filename() for a in ready.parsed().iter_attachments()] == ["final.pdf"]


async def test_a_cost_centre_keeps_counting_and_carries_its_warning_while_the_mail_server_is_down(client, settings, task_queue):
    """The threshold is crossed while the mail server is down and the history is at its limit: the cost centre
    goes on counting every order, continues as new without waiting for the warning, carries it and its refusals
    into the next run, and the warning arrives once when the server is back."""
    port = free_port()
    terms = CostCentreTerms(name=f"cc-{task_queue}", budget=Decimal("100"), currency="EUR", warn_at_percent=Decimal(50),
                            period="month", approvers=["chefin@bücher.example"])  # fmt: skip
    async with build_worker(client, with_smtp_port(settings, port), task_queue=task_queue):
        centre = await client.start_workflow(
            "CostCentreWorkflow", CostCentreBook(terms=terms, history_limit=50), id=f"cost-centre-{terms.name}", task_queue=task_queue
        )
        first_run = (await centre.describe()).run_id
        await centre.signal("add_spending", SpendingRecord(order=sample_order(price={"amount": "7", "currency": "USD"}), period="2026-12"))
        for count in range(1, 21):  # one at a time, each counted before the next: a workflow task each
            await centre.signal("add_spending", SpendingRecord(order=sample_order(price={"amount": "5", "currency": "EUR"}), period="2026-12"))
            await eventually(lambda: _spent(centre, Decimal(5 * count)), what=f"order {count} counted while the warning waits")
        spending = await centre.query("spending", result_type=Spending)
        assert spending.orders == 20 and spending.warned_at is not None
        assert (await centre.describe()).run_id != first_run  # continued as new without waiting for the warning
        # The first run stopped near its limit (issue 20 saw 163 events at a limit of 50): a few tasks past it at most.
        ended = await client.get_workflow_handle(centre.id, run_id=first_run).describe()
        assert ended.history_length <= 50 + 15, ended.history_length
        assert any("this cost centre counts in EUR" in r for r in spending.refused)  # the refusal rode along
        with SmtpCapture(port=port) as back:
            await eventually(lambda: messages_to(back, "chefin@xn--bcher-kva.example"), timeout=60, what="the warning")
            await asyncio.sleep(2)
            (warning,) = messages_to(back, "chefin@xn--bcher-kva.example")
            assert warning.parsed()["Subject"] == f"Le centre de coûts {terms.name} a dépensé 50 % de son budget"
        await centre.terminate("test over")


async def test_a_restarted_order_counts_again_and_one_cancelled_from_temporal_is_taken_back(client, settings, task_queue):
    """Run 1 is counted, then cancelled: taken back. The same order started again is counted anew (not taken for
    run 1's count), and when `temporal workflow cancel` ends it, its count comes off too."""
    name = f"cc-{task_queue}"
    centre_settings = CostCentreSettings(budget=Decimal("1000"), currency="EUR", approvers=["cmo@example.org"])
    centred = settings.model_copy(update={"cost_centres": {name: centre_settings}})
    centre = client.get_workflow_handle(f"cost-centre-{name}")
    async with build_worker(client, centred, task_queue=task_queue):
        order = sample_order(language="en", cost_centre=name, price={"amount": "240.00", "currency": "EUR"})
        first = await start(client, task_queue, order)
        await first.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _spent(centre, Decimal("240.00")), what="run 1 counted")
        await first.signal("change_status", {"trigger": "cancel"})
        await first.result()
        await eventually(lambda: _spent(centre, Decimal("0.00")), what="run 1 taken back")
        second = await start(client, task_queue, order)
        await second.signal("change_status", {"trigger": "accept"})
        spending = await eventually(lambda: _spent(centre, Decimal("240.00")), what="run 2 counted anew")
        assert (spending.orders, spending.taken_back) == (1, 1)
        notes = await eventually(lambda: _noted(second, "counted in"), what="the cost centre's answer on the order")
        assert f"cost centre {name}: 240.00 EUR counted in {spending.period}" in notes
        await second.cancel()  # from Temporal: not a status change of the order's own
        await asyncio.wait_for(_ended(second), 20)
        spending = await eventually(lambda: _spent(centre, Decimal("0.00")), what="run 2 taken back as it was cancelled")
        assert (spending.orders, spending.taken_back) == (0, 2)
        await centre.terminate("test over")


def worker_env(dev_env: WorkflowEnvironment, task_queue: str, smtp_port: int, tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a `printroom worker` process polling the test's task queue and mailing to smtp_port."""
    from tests.test_end_to_end import clean_env

    return clean_env(
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host, PRINTROOM_TEMPORAL__TASK_QUEUE=task_queue,
        PRINTROOM_SMTP__PORT=str(smtp_port), PRINTROOM_OPERATORS="ops@example.com",
        PRINTROOM_DELIVERIES_DIR=str(tmp_path / "deliveries"), **more,
    )  # fmt: skip


class Workers:
    """`printroom worker` in processes of their own: one runs, a test SIGKILLs it and starts the next; whatever
    still runs at the end is stopped as an operator would (SIGTERM)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        from tests.test_end_to_end import PRINTROOM

        self._processes.append(await asyncio.create_subprocess_exec(
            *PRINTROOM, "worker", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=self._env
        ))  # fmt: skip

    async def kill(self) -> None:
        self._processes[-1].kill()
        await self._processes[-1].wait()

    async def stop(self) -> None:
        """As an operator stops them: a send under way finishes first (graceful shutdown), and none starts after."""
        for process in self._processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()

    async def __aenter__(self) -> Workers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def test_a_worker_killed_while_emails_wait_on_their_own_loses_none_and_sends_none_twice(dev_env, smtp, task_queue, tmp_path):
    """`printroom worker` SIGKILLed while an email waits for its PDF, the email after it has gone, and an order has
    just been started again under the same id: the next worker takes over; each email arrives once."""
    store = tmp_path / "documents"
    (store / "PO" / "J1").mkdir(parents=True)
    env = worker_env(
        dev_env, task_queue, smtp.port, tmp_path, PRINTROOM_DOCUMENTS__ROOT=str(store),
        PRINTROOM_EMAILS='{"order_completed": {"attachments": ["document"]}, "order_received_operator": {"send": "never"}}',
    )  # fmt: skip

    client = dev_env.client
    waiting = sample_order(language="en", jobs=JOB_WITH_A_PDF)
    restarted = sample_order(language="en")
    async with Workers(env) as workers:
        handle = await start(client, task_queue, waiting)
        for trigger in ("accept", "start_production", "complete"):
            await handle.signal("change_status", {"trigger": trigger})
        await eventually(lambda: _pending(handle, "order_completed"), timeout=30, what="order_completed waiting for its PDF")
        await handle.signal("change_status", {"trigger": "ship"})
        await eventually(lambda: _subjects(smtp, "on its way"), timeout=30, what="order_shipped")
        earlier = await start(client, task_queue, restarted)
        await eventually(lambda: _pending_none(earlier), timeout=30, what="the first run's order_received sent")
        await earlier.signal("change_status", {"trigger": "cancel"})
        await earlier.result()
        again = await start(client, task_queue, restarted)
        await workers.kill()  # while the PDF is awaited and the second run's first email is on its way
        (store / "PO" / "J1" / "final.pdf").write_bytes(b"%PDF-1.4 final")
        await workers.start()
        await asyncio.wait_for(handle.result(), 90)
        await eventually(lambda: _pending_none(again), timeout=60, what="the second run's order_received")
        await again.signal("change_status", {"trigger": "cancel"})
        await asyncio.wait_for(again.result(), 30)
    ids = Counter(m.parsed()["Message-ID"] for m in smtp.messages)
    assert {i: n for i, n in ids.items() if n > 1} == {}, "sent twice"
    subjects = Counter(m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org"))
    assert subjects[f"Your order {waiting['id']} is ready"] == subjects[f"Your order {waiting['id']} is on its way"] == 1
    assert subjects[f"We have received your order {restarted['id']}"] == 2  # once for each run
    assert subjects[f"Order {restarted['id']} has been cancelled"] == 2


async def test_a_worker_killed_in_each_fault_case_tells_no_lie_and_sends_each_email_once(dev_env, task_queue, tmp_path):
    """One SIGKILL while, at once: Request Cancellation has just reached `budget-<id>` and a forged hold_drafts its
    order; a restarted order's first run's email is retried (the mail server is down); a cost centre reaches its
    continue-as-new point with its warning waiting for the mail server. The next worker takes over: the approvers
    are not told the order was cancelled and ask_again asks them anew, the forged hand-over is refused, the
    restarted order's second run sends its email once and the first run's never goes, and the warning arrives
    once."""
    port = free_port()
    client = dev_env.client
    approver = "head@example.org"
    withdrawn = sample_order(language="en", budget={"limit": "100.00", "approvers": [approver]})
    restarted = sample_order(language="en")
    terms = CostCentreTerms(name=f"cc-{task_queue}", budget=Decimal("100"), currency="EUR", warn_at_percent=Decimal(50),
                            period="month", approvers=["chefin@bücher.example"])  # fmt: skip
    env = worker_env(dev_env, task_queue, port, tmp_path, PRINTROOM_EMAILS='{"order_received_operator": {"send": "never"}}')
    async with Workers(env) as workers:
        with SmtpCapture(port=port) as before:  # up for the approval's request, then down until the end
            waiting = await start(client, task_queue, withdrawn)
            await eventually(lambda: messages_to(before, approver), timeout=30, what="the approval's request")
        earlier = await start(client, task_queue, restarted)
        await eventually(lambda: _pending(earlier, "order_received"), timeout=30, what="the first run's email retried")
        centre = await client.start_workflow(
            "CostCentreWorkflow", CostCentreBook(terms=terms, history_limit=50), id=f"cost-centre-{terms.name}", task_queue=task_queue
        )
        first_run = centre.first_execution_run_id
        spending = SpendingRecord(order=sample_order(price={"amount": "5", "currency": "EUR"}), period="2026-12")
        for count in range(1, 16):  # a task each: the warning (at 10) retried, the history near its limit
            await centre.signal("add_spending", spending.model_copy(update={"order": sample_order(price={"amount": "5", "currency": "EUR"})}))
            await eventually(lambda: _spent(centre, Decimal(5 * count)), what=f"order {count} counted")
        for _ in range(5):  # past the limit: the cost centre continues as new as the worker dies
            await centre.signal("add_spending", spending.model_copy(update={"order": sample_order(price={"amount": "5", "currency": "EUR"})}))
        budget = client.get_workflow_handle(f"budget-{withdrawn['id']}", result_type=ApprovalOutcome)
        await budget.cancel()  # Request Cancellation, not the order's doing
        await waiting.signal(HOLD_DRAFTS, {"message_ids": ["<forged@example.net>"]})
        await workers.kill()
        await workers.start()
        await earlier.cancel()  # the first run ends while its email is still retried, and started again
        await asyncio.wait_for(_ended(earlier), 30)
        again = await start(client, task_queue, restarted)
        await eventually(lambda: _pending(again, "order_received"), timeout=30, what="the second run's email retried")
        await eventually(lambda: _spent(centre, Decimal(100)), timeout=30, what="all 20 counted")
        assert (await centre.describe()).run_id != first_run
        outcome = await asyncio.wait_for(budget.result(), 60)
        assert (outcome.status, outcome.from_outside) == ("cancelled", True)
        await eventually(lambda: _approval_says(waiting, "cancelled from outside"), timeout=30, what="the order told")
        with SmtpCapture(port=port) as back:
            await waiting.signal("ask_again", {"by": "Léa"})
            await eventually(lambda: messages_to(back, approver), timeout=30, what="the new approval's request")
            await eventually(lambda: _subjects(back, "We have received"), timeout=30, what="the second run's email")
            await eventually(lambda: messages_to(back, "chefin@xn--bcher-kva.example"), timeout=40, what="the warning")
            # Fetched from the approval that the dead worker last ran (its query may wait for that worker's queue).
            refused = await eventually(lambda: _refused_hand_over(waiting), timeout=60, what="the forged hand-over refused")
            assert refused == ["the approval holds no drafts <forged@example.net> for its order"]
            # Nothing left that could send (no activity pending or retried, no workflow task waiting), then the worker
            # stopped, a send under way finishing first: whatever was sent twice has arrived by now.
            asking = client.get_workflow_handle(f"budget-{withdrawn['id']}")  # the approval asked anew
            await eventually(lambda: _nothing_pending(waiting, asking, again, centre), timeout=60, what="no email left to send")
            sent_by_again = [e.message_id for e in (await order_state(again)).emails_sent]  # its last task recorded
            await workers.stop()
            assert [m.parsed()["Subject"] for m in messages_to(back, approver)] == [f"Approval needed: order {withdrawn['id']} is over its budget"]
            assert len(messages_to(back, "chefin@xn--bcher-kva.example")) == 1
            (received,) = [m.parsed()["Message-ID"] for m in messages_to(back, "marie@example.org") if "We have received" in m.parsed()["Subject"]]
            assert received in sent_by_again
            ids = Counter(m.parsed()["Message-ID"] for m in [*before.messages, *back.messages])
            assert {i: n for i, n in ids.items() if n > 1} == {}, "sent twice"
        for handle in (waiting, again, centre):
            await handle.terminate("test over")


async def _nothing_pending(*handles: WorkflowHandle[Any, Any]) -> bool:
    for handle in handles:
        described = (await handle.describe()).raw_description
        if described.pending_activities or described.HasField("pending_workflow_task"):
            return False
    return True


async def _refused_hand_over(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [r.reason for r in (await order_state(handle)).refused if r.kind == HOLD_DRAFTS]


async def _approval_says(handle: WorkflowHandle[Any, Any], words: str) -> bool:
    return words in (await order_state(handle)).approval


async def test_orders_evicted_while_an_email_retries_and_an_approval_waits_end_without_noise(client, settings, smtp, task_queue, tmp_path, monkeypatch, caplog, capfd):
    """A worker that keeps one workflow in its cache evicts an order whose email retries on its own (its PDF is
    missing) each time it runs the other, which waits for its approval: evicted coroutines run no workflow call on
    their way out ("Exception ignored in <coroutine Outbox.run>"), and both orders still end as they should."""
    import gc
    import sys

    ignored: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: ignored.append(f"{raised.object!r}: {raised.exc_value!r}"))
    caplog.set_level(logging.DEBUG, logger="temporalio.worker._workflow")
    attaching, store = attaching_a_pdf(settings, tmp_path)
    one_cached = attaching.model_copy(update={"worker": attaching.worker.model_copy(update={"max_cached_workflows": 1})})
    async with build_worker(client, one_cached, task_queue=task_queue):
        retrying = await start(client, task_queue, sample_order(language="en", jobs=JOB_WITH_A_PDF))
        for trigger in ("accept", "start_production", "complete"):
            await retrying.signal("change_status", {"trigger": trigger})
        await eventually(lambda: _pending(retrying, "order_completed"), what="order_completed waiting for its PDF")
        approving = await start(client, task_queue, sample_order(language="en", budget={"limit": "1", "approvers": ["head@example.org"]}))
        await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval's request")
        for _ in range(4):  # each runs after the other: evicted, then rebuilt from its history
            for handle in (retrying, approving):
                await handle.signal("change_status", {"trigger": "no_such_trigger"})
            for handle in (retrying, approving):
                await eventually(lambda: task_settled(handle), what=f"{handle.id}'s task for the signal")
        await retrying.signal("change_status", {"trigger": "ship"})
        (store / "PO" / "J1" / "final.pdf").write_bytes(b"%PDF-1.4 final")
        await approving.signal("change_status", {"trigger": "cancel"})
        assert (await asyncio.wait_for(approving.result(), 30)).status == "cancelled"
        assert (await asyncio.wait_for(retrying.result(), 60)).status == "shipped"
    gc.collect()  # an evicted coroutine closed by the collector would say so now
    evicted = [r for r in caplog.records if r.getMessage().startswith("Evicting workflow") and "cache full" in r.getMessage()]
    assert len(evicted) >= 4  # the orders were rebuilt, over and over
    noise = [*ignored, *(r.getMessage() for r in caplog.records if "Exception ignored" in r.getMessage()), capfd.readouterr().err]
    assert not [n for n in noise if "Exception ignored" in n or "Outbox" in n], noise


async def _pending_none(handle: WorkflowHandle[Any, Any]) -> bool:
    state = await order_state(handle)
    return not state.emails_pending and any(e.audience == "customer" for e in state.emails_sent)


async def _noted(handle: WorkflowHandle[Any, Any], words: str) -> list[str] | None:
    notes = (await order_state(handle)).email_notes
    return notes if any(words in n for n in notes) else None


async def _status(handle: WorkflowHandle[Any, Any], status: str) -> bool:
    return (await order_state(handle)).status == status


async def _pending(handle: WorkflowHandle[Any, Any], trigger: str) -> bool:
    """The email is with the retried activity, its last failure said."""
    state = await order_state(handle)
    return any(p.email_trigger == trigger and p.status == "sending" and p.last_error for p in state.emails_pending)


async def _ended(handle: WorkflowHandle[Any, Any]) -> None:
    while (await handle.describe()).close_time is None:
        await asyncio.sleep(0.1)


async def _spent(centre: WorkflowHandle[Any, Any], amount: Decimal) -> Spending | None:
    try:
        spending = await centre.query("spending", result_type=Spending)
    except Exception:  # noqa: BLE001  # between two runs
        return None
    return spending if spending.spent == amount else None


def _subjects(smtp: SmtpCapture, words: str) -> list[str]:
    return [m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org") if words in m.parsed()["Subject"]]
