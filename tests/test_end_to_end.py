"""As users run it: `printroom worker` and `printroom dev` as processes, orders driven with the `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path


from printroom.activities.deliveries import CLAIM_ALIVE, KEEP_ALIVE
from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import SmtpCapture
from printroom.models import OrderState
from tests.conftest import eventually, free_port, messages_to, sample_order

PRINTROOM = [sys.executable, "-c", "from printroom.cli.main import main; main()"]
ROOT = Path(__file__).resolve().parents[1]


async def run(*command: str, timeout: float = 60) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = output.decode()
    assert process.returncode == 0, f"{shlex.join(command)} exited {process.returncode}:\n{text}"
    return text


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRINTROOM_", "TEMPORAL_"))}
    return {**env, **extra}


async def stop(process: asyncio.subprocess.Process, signum: int, timeout: float = 45) -> tuple[int, str]:
    process.send_signal(signum)
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, output.decode()


async def test_an_order_started_and_signalled_with_the_temporal_cli_emails_the_customer(dev_env, smtp: SmtpCapture, task_queue, tmp_path):
    address = dev_env.client.service_client.config.target_host
    worker = await asyncio.create_subprocess_exec(
        *PRINTROOM, "worker",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env(
            TEMPORAL_ADDRESS=address,  # the standard variable, read as the Temporal CLI does
            PRINTROOM_TEMPORAL__TASK_QUEUE=task_queue,
            PRINTROOM_SMTP__PORT=str(smtp.port),
            PRINTROOM_SENDER__ADDRESS="printroom@example.com",
            PRINTROOM_SENDER__NAME="Druckerei Müller",
            PRINTROOM_OPERATORS="ops@example.com",
            PRINTROOM_DELIVERIES_DIR=str(tmp_path / "deliveries"),
        ),
    )  # fmt: skip
    order = sample_order(language="en")
    workflow_id = f"order-{order['id']}"
    temporal = temporal_binary()
    await run(temporal, "workflow", "start", "--address", address, "--task-queue", task_queue,
              "--type", "OrderWorkflow", "--workflow-id", workflow_id, "--input", json.dumps(order))  # fmt: skip
    await run(temporal, "workflow", "signal", "--address", address, "--workflow-id", workflow_id,
              "--name", "change_status", "--input", '{"trigger": "accept", "by": "Léa"}')  # fmt: skip
    accepted = await eventually(
        lambda: [m for m in messages_to(smtp, "marie@example.org") if "accepted" in m.parsed()["Subject"]],
        what="the acceptance email",
    )
    message = accepted[0].parsed()
    assert message["Subject"] == f"Your order {order['id']} has been accepted"
    assert message["To"] == "marie@example.org"
    assert str(message["From"]) == "Druckerei Müller <printroom@example.com>"
    assert message["Content-Language"] == "en"
    assert "Dear Marie Curie," in message.get_body(("plain",)).get_content()
    query = await run(temporal, "workflow", "query", "--address", address, "--workflow-id", workflow_id,
                      "--name", "state", "--output", "json")  # fmt: skip
    assert json.loads(query)["queryResult"][0]["status"] == "accepted"

    code, output = await stop(worker, signal.SIGTERM)
    assert code == 0, output
    assert "stopping: letting running activities finish" in output


async def test_the_worker_refuses_an_unreachable_temporal_service_with_a_clear_message():
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *PRINTROOM, "worker", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env(PRINTROOM_TEMPORAL__ADDRESS=f"127.0.0.1:{port}"),
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert output.decode() == (  # one line, in words: not the core's tonic::transport::Error(...)
        f"printroom worker: cannot reach Temporal at 127.0.0.1:{port} (connection refused): is `make run` running, "
        "or is `temporal.address` right?\n"
    )


def dev_env_vars(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    """`web_port` is web.port; the others are dev.<name>."""
    return clean_env(
        PRINTROOM_DEV__DATA_DIR=str(tmp_path / "var"),
        **{f"PRINTROOM_DEV__{name.upper()}": str(port) for name, port in ports.items() if name != "web_port"},
        PRINTROOM_WEB__PORT=str(ports["web_port"]),
    )


async def banner_of(dev: asyncio.subprocess.Process) -> str:
    """What `printroom dev` prints once everything runs."""
    banner = ""
    assert dev.stdout is not None
    while "Stop everything with Ctrl-C." not in banner:
        line = await asyncio.wait_for(dev.stdout.readline(), 90)
        assert line, f"printroom dev ended early:\n{banner}"
        banner += line.decode()
    return banner


async def test_printroom_dev_runs_the_sample_order_as_printed_and_stops_cleanly_on_ctrl_c(tmp_path):
    ports = {"temporal_port": free_port(), "ui_port": free_port(), "smtp_port": free_port(), "web_port": free_port()}
    dev = await asyncio.create_subprocess_exec(
        *PRINTROOM, "dev", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dev_env_vars(tmp_path, ports), cwd=tmp_path,
    )  # fmt: skip
    banner = await banner_of(dev)
    assert f"Temporal Web UI:  http://127.0.0.1:{ports['ui_port']}" in banner
    assert f"Approval page:    http://127.0.0.1:{ports['web_port']}" in banner
    secret = tmp_path / "var" / "web-secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_text().strip()) == 64
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['web_port']}/page.css", timeout=10) as answer:
        assert answer.status == 200  # the approval page is served beside the rest
    start = next(line.strip() for line in banner.splitlines() if " workflow start " in line)
    signal_accept = next(line.strip() for line in banner.splitlines() if " workflow signal " in line)
    await run(*shlex.split(start))  # runnable exactly as printed
    await run(*shlex.split(signal_accept))
    outbox = tmp_path / "var" / "outbox"
    files = await eventually(lambda: sorted(outbox.glob("*.eml")) if len(list(outbox.glob("*.eml"))) >= 3 else None,
                             what="three .eml files in var/outbox")  # fmt: skip
    subjects = [re.search(rb"^Subject: (.*)$", f.read_bytes(), re.M).group(1) for f in files]
    # Approve links work for whoever reads them: the outbox is the user's alone.
    assert outbox.stat().st_mode & 0o777 == 0o700 and {f.stat().st_mode & 0o777 for f in files} == {0o600}
    assert len(subjects) == 3
    assert (tmp_path / "var" / "temporal.db").exists()

    code, output = await stop(dev, signal.SIGINT)
    assert code == 0, output
    for port in ports.values():  # nothing is left listening: all four stopped
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after Ctrl-C"


async def test_printroom_dev_names_a_busy_port_and_the_setting_that_moves_it(tmp_path):
    ports = {"temporal_port": free_port(), "ui_port": free_port(), "smtp_port": free_port(), "web_port": free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["ui_port"]))
        holder.listen()
        process = await asyncio.create_subprocess_exec(
            *PRINTROOM, "dev", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=dev_env_vars(tmp_path, ports),
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    lines = output.decode().strip().splitlines()
    assert lines == [
        f"printroom dev: port {ports['ui_port']} on 127.0.0.1 is already in use; stop what holds it or set "
        f"dev.ui_port (PRINTROOM_DEV__UI_PORT={ports['ui_port'] + 1})"
    ]


class SlowFirstData:
    """Takes the first message slowly (the worker is killed meanwhile), later ones at once."""

    def __init__(self) -> None:
        self.arrived: list[bytes] = []
        self.at: list[float] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.arrived.append(envelope.content)
        self.at.append(time.monotonic())
        if len(self.arrived) == 1:
            await asyncio.sleep(4)
        return "250 OK"


async def test_a_worker_killed_during_a_long_data_hands_over_without_two_attempts_at_once(dev_env, task_queue, tmp_path):
    """SIGKILL while the server is taking the message: the next worker waits until the dead one's claim is stale
    (it never sends beside a live attempt), then sends it and says the customer may have it twice."""
    from aiosmtpd.controller import Controller

    slow = SlowFirstData()
    controller = Controller(slow, hostname="127.0.0.1", port=free_port())
    controller.start()
    address = dev_env.client.service_client.config.target_host
    env = clean_env(
        TEMPORAL_ADDRESS=address, PRINTROOM_TEMPORAL__TASK_QUEUE=task_queue, PRINTROOM_SMTP__PORT=str(controller.port),
        PRINTROOM_OPERATORS="ops@example.com", PRINTROOM_DELIVERIES_DIR=str(tmp_path / "deliveries"),
        PRINTROOM_EMAILS='{"order_received_operator": {"send": "never"}}',
    )  # fmt: skip

    async def worker() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*PRINTROOM, "worker", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)

    first = await worker()
    try:
        order = sample_order()
        handle = await dev_env.client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await eventually(lambda: slow.arrived, timeout=30, what="the first DATA")
        first.kill()  # mid-DATA: the server has the message, the worker never hears 250
        killed_at = time.monotonic()
        await first.wait()
        second = await worker()
        try:
            state = await eventually(lambda: _notes_about_twice(handle), timeout=90, what="the email sent again by the second worker")
        finally:
            second.send_signal(signal.SIGTERM)
            await second.communicate()
    finally:
        controller.stop()
    assert len(slow.arrived) == 2  # no third copy
    # Not before the dead worker's claim went stale: the next worker waited instead of sending beside it.
    assert slow.at[1] - killed_at >= CLAIM_ALIVE - KEEP_ALIVE - 1
    assert [e.email_trigger for e in state.emails_sent] == ["order_received"]
    assert state.emails_failed == []


async def _notes_about_twice(handle) -> OrderState | None:
    state = await handle.query("state", result_type=OrderState)
    return state if any("gets it twice" in n for n in state.email_notes) else None
