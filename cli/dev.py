"""`printroom dev`: the embedded default. Supervises a Temporal dev server, a local SMTP capture and the worker."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import SmtpCapture
from printroom.models import Order
from printroom.settings import Settings, SmtpSettings, TemporalSettings, WebSettings
from printroom.web.server import WebRefused, serve_web
from printroom.worker.main import connect, run_worker, stop_on_signals
from printroom.workflows.order import SEARCH_ATTRIBUTES, order_summary

log = logging.getLogger("printroom.dev")

HOST = "127.0.0.1"
# Package data, so that the banner's commands run from an installed wheel too (examples/ links to them).
SAMPLE_ORDER = Path(__file__).resolve().parent / "samples" / "order.json"
OVER_BUDGET_ORDER = SAMPLE_ORDER.with_name("order-over-budget.json")
STARTUP_TIMEOUT = 60.0


class PortInUse(Exception):
    pass


def check_ports_free(settings: Settings) -> None:
    """Fail before starting anything, naming the port and the setting that changes it."""
    dev = settings.dev
    ports = [(dev.temporal_port, "dev.temporal_port"), (dev.ui_port, "dev.ui_port"), (dev.smtp_port, "dev.smtp_port")]
    for port, field in [*ports, (settings.web.port, "web.port")]:
        with socket.socket() as probe:
            # As the servers bind: connections of a previous run in TIME_WAIT do not make a port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                variable = "PRINTROOM_" + field.upper().replace(".", "__")
                raise PortInUse(
                    f"port {port} on {HOST} is already in use; stop what holds it or set {field} ({variable}={port + 1})"
                ) from None


def web_secret_file(data_dir: Path) -> Path:
    """The embedded default's link secret: made once, on first start, readable by this user only."""
    path = data_dir / "web-secret"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
    return path


def dev_web(settings: Settings) -> WebSettings:
    """`printroom web` on this machine: links in emails lead to it, signed with var/web-secret (unless a secret is
    given in the environment)."""
    web = settings.web
    secret_file = None if web.secret is not None else (web.secret_file or web_secret_file(settings.dev.data_dir))
    public_url = web.public_url or f"http://{HOST}:{web.port}"
    # The dev Web UI logs nobody in and can send no token: its codec requests come from this machine only.
    return web.model_copy(update={"host": HOST, "public_url": public_url, "secret_file": secret_file, "codec_auth": "proxy"})


def dev_settings(settings: Settings) -> Settings:
    """The settings the worker and `printroom web` run with under `printroom dev`: this machine's dev server, SMTP
    capture and web server; the encryption settings as given (keys, turned off, the key that encrypts), so that
    `make run` writes what the print room's own workers would."""
    dev, temporal = settings.dev, settings.temporal
    return settings.model_copy(
        update={
            "web": dev_web(settings),
            "smtp": SmtpSettings(host=HOST, port=dev.smtp_port),
            "deliveries_dir": dev.data_dir / "deliveries",
            "temporal": TemporalSettings(
                address=f"{HOST}:{dev.temporal_port}",
                namespace="default",
                task_queue=temporal.task_queue,
                ui_url=f"http://{HOST}:{dev.ui_port}",  # emails to operators link to the order's page there
                encryption_key=temporal.encryption_key,
                encryption_key_file=temporal.encryption_key_file,
                encrypt=temporal.encrypt,
                encrypt_with=temporal.encrypt_with,
            ),
        }
    )


def codec_endpoint(settings: Settings) -> str | None:
    """Where the dev Web UI and the banner's `temporal` commands encrypt and decrypt; None while encryption is off."""
    return f"http://{HOST}:{settings.web.port}/codec" if settings.temporal.key_ring() is not None else None


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if printroom dev dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def temporal_command(settings: Settings) -> list[str]:
    dev = settings.dev
    command = [
        temporal_binary("temporal"), "server", "start-dev",
        "--ip", HOST,
        "--port", str(dev.temporal_port),
        "--ui-port", str(dev.ui_port),
        "--db-filename", str(dev.data_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--ui-disable-news-fetch",
        "--log-level", "warn",
    ]  # fmt: skip
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    if endpoint := codec_endpoint(settings):
        command += ["--ui-codec-endpoint", endpoint]
    return command


async def wait_for_temporal(
    server: subprocess.Popen[bytes], address: str, log_file: Path, temporal: TemporalSettings | None = None
) -> Client:
    """A client of the dev server once it answers; `temporal`: the settings it connects with (their keys)."""
    temporal = temporal or TemporalSettings(address=address, namespace="default")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while True:
        if server.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the Temporal dev server exited with code {server.returncode}:\n{tail}")
        try:
            return await connect(temporal, use_environment=False)
        except RuntimeError:
            if loop.time() > deadline:
                raise RuntimeError(f"the Temporal dev server did not answer on {address} within {STARTUP_TIMEOUT:.0f}s")
            await asyncio.sleep(0.25)


def banner(settings: Settings, address: str, outbox: Path) -> str:
    temporal = temporal_binary("temporal")
    order = Order.model_validate(json.loads(SAMPLE_ORDER.read_text(encoding="utf-8")))
    order_input = f"--input-file {shlex.quote(str(SAMPLE_ORDER))}"
    endpoint = codec_endpoint(settings)
    # Encrypted: the summary names the order only (a `temporal` command without the codec would write it in clear).
    order_id, summary = order.id, order_summary(order) if endpoint is None else f"Order {order.id}"
    queue = settings.temporal.task_queue
    # Encrypted, the CLI encrypts what it sends, and decrypts what it shows, through printroom web's codec server.
    target = address if endpoint is None else f"{address} --codec-endpoint {endpoint}"
    return "\n".join(
        [
            "printroom dev is running.",
            f"  Temporal Web UI:  http://{HOST}:{settings.dev.ui_port}",
            f"  Temporal server:  {address} (SQLite {settings.dev.data_dir / 'temporal.db'})",
            f"  SMTP capture:     {HOST}:{settings.dev.smtp_port}, every message written to {outbox}/",
            f"  Worker:           task queue {queue!r}",
            f"  Approval page:    {settings.web.public_url} (approvers' Approve/Reject links, draft previews)",
            "",
            "Start the sample order (from another terminal):",
            f"  {temporal} workflow start --address {target} --task-queue {queue} --type OrderWorkflow "
            f"--workflow-id order-{order_id} --static-summary {shlex.quote(summary)} {order_input}",
            "Then move it along:",
            f"  {temporal} workflow signal --address {target} --workflow-id order-{order_id} "
            '--name change_status --input \'{"trigger": "accept", "by": "me"}\'',
            f"An order over its budget waits for its approver: start it with --input-file {shlex.quote(str(OVER_BUDGET_ORDER))} and",
            "--workflow-id order-PO-1002; its approval_requested email in the outbox has Approve and Reject buttons",
            "that lead to the approval page. Or answer as its approver from here:",
            f"  {temporal} workflow signal --address {target} --workflow-id budget-PO-1002 "
            '--name approve --input \'{"by": "chefin@bücher.example", "comment": "OK"}\'',
            "",
            "Stop everything with Ctrl-C.",
        ]
    )


async def run_dev(settings: Settings) -> int:
    check_ports_free(settings)
    dev = settings.dev
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    address = f"{HOST}:{dev.temporal_port}"
    outbox = (dev.data_dir / "outbox").resolve()
    worker_settings = dev_settings(settings)
    stop = stop_on_signals()
    log_file = dev.data_dir / "temporal.log"
    with log_file.open("ab") as server_log:
        server = subprocess.Popen(
            temporal_command(worker_settings),
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the server after the worker
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    capture = SmtpCapture(HOST, dev.smtp_port, outbox)
    try:
        capture.start()
        client = await wait_for_temporal(server, address, log_file, worker_settings.temporal)
        web = asyncio.create_task(serve_web(worker_settings, stop, client))
        await asyncio.sleep(0)  # listening (or refused) before the banner says where
        if web.done():
            web.result()  # raises WebRefused: a bad secret is the administrator's to fix first
        print(banner(worker_settings, address, outbox), flush=True)
        watcher = asyncio.create_task(_watch(server, stop))
        await run_worker(worker_settings, stop, client)
        watcher.cancel()
        stop.set()
        await web
        if server.poll() is not None:
            print(f"printroom dev: the Temporal dev server stopped (code {server.returncode}); see {log_file}")
            return 1
        return 0
    finally:
        capture.stop()
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.info("printroom dev stopped")


async def _watch(server: subprocess.Popen[bytes], stop: asyncio.Event) -> None:
    while server.poll() is None:
        await asyncio.sleep(0.5)
    stop.set()
