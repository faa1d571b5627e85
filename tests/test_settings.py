"""Settings: one TOML file, PRINTROOM_* overrides, every bad field named, and the CLI's verdict."""

from __future__ import annotations

from datetime import timedelta

import subprocess
from pathlib import Path

import pytest

from printroom.settings import SettingsError, load_settings
from tests.conftest import run_printroom


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "printroom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_sets_fields_and_a_trigger_policy_is_merged_over_its_default(tmp_path):
    path = write(tmp_path, """
operators = "a@example.org; b@example.org"
[sender]
address = "print@example.org"
name = "Salle d'impression"
[smtp]
host = "mail.example.org"
[emails.order_accepted]
send = "always"
""")
    settings = load_settings(path)
    assert settings.sender.name == "Salle d'impression"
    assert [str(a) for a in settings.operators] == ["a@example.org", "b@example.org"]
    assert (settings.smtp.host, settings.smtp.effective_port) == ("mail.example.org", 25)
    accepted = settings.emails.for_trigger("order_accepted")
    assert (accepted.send, accepted.to_customer) == ("always", True)  # to_customer kept from the default
    assert settings.emails.for_trigger("order_shipped").send == "always"


def test_environment_variables_override_the_file_with_double_underscore_nesting(tmp_path, monkeypatch):
    path = write(tmp_path, "[smtp]\nhost = 'mail.example.org'\nport = 25\n")
    monkeypatch.setenv("PRINTROOM_SMTP__PORT", "2525")
    monkeypatch.setenv("PRINTROOM_SENDER__NAME", "Druckerei Müller")
    settings = load_settings(path)
    assert (settings.smtp.host, settings.smtp.port, settings.sender.name) == ("mail.example.org", 2525, "Druckerei Müller")


def test_every_bad_field_is_named_at_once(tmp_path):
    path = write(tmp_path, """
operators = "a@example.org; not-an-address"
colour = "blue"
[smtp]
port = "twenty-five"
[emails.order_teleported]
send = "always"
[shops.default]
order_url = "https://shop.example.org/orders"
""")
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    message = str(error.value)
    assert message.startswith(f"invalid settings ({path}):")
    for expected in (
        "operators.1: value is not a valid email address",
        "colour: Extra inputs are not permitted",
        "smtp.port: Input should be a valid integer",
        "emails: Value error, unknown email trigger(s) ['order_teleported']",
        "shops.default: Value error, order_url must contain {order_id}",
    ):
        assert expected in message


def test_each_cc_address_is_validated_and_named(tmp_path):
    path = write(tmp_path, "[sender]\ncc = 'archive@example.com; not an address'\n")
    with pytest.raises(SettingsError, match=r"sender\.cc\.1: value is not a valid email address"):
        load_settings(path)


def test_a_wrong_value_type_for_a_policy_is_named(tmp_path):
    path = write(tmp_path, "[emails.order_accepted]\nsend = 'sometimes'\n")
    with pytest.raises(SettingsError, match=r"emails\.order_accepted\.send: Input should be 'never', 'always' or 'on_customer_request'"):
        load_settings(path)


def test_a_missing_file_and_invalid_toml_are_named(tmp_path):
    with pytest.raises(SettingsError, match="settings file .*nope.toml does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(write(tmp_path, "[smtp\nport = 1"))


def printroom(*args: str, env_settings: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_printroom(*args, **({"PRINTROOM_SETTINGS": str(env_settings)} if env_settings else {}))


def test_settings_check_exits_non_zero_naming_the_bad_fields(tmp_path):
    bad = write(tmp_path, "[smtp]\nport = 99999\nsecurity = 'ssl'\nstarttls_port = 587\n")
    run = printroom("settings", "check", env_settings=bad)
    assert run.returncode == 2
    assert "smtp.port: Input should be less than or equal to 65535" in run.stderr
    assert "smtp.security: Input should be 'none', 'starttls' or 'tls'" in run.stderr
    assert "smtp.starttls_port: Extra inputs are not permitted" in run.stderr


def test_settings_check_accepts_good_settings_given_with_the_flag(tmp_path):
    good = write(tmp_path, "[sender]\naddress = 'print@example.org'\n")
    run = printroom("--settings", str(good), "settings", "check")
    assert run.returncode == 0, run.stderr
    assert f"settings OK: {good}" in run.stdout


def test_the_worker_refuses_to_start_on_invalid_settings(tmp_path):
    bad = write(tmp_path, "[temporal]\ntask_queue = 3\n")
    run = printroom("worker", env_settings=bad)
    assert run.returncode == 2
    assert "temporal.task_queue: Input should be a valid string" in run.stderr


def test_address_lists_from_the_environment_are_split_on_semicolons(monkeypatch):
    monkeypatch.setenv("PRINTROOM_OPERATORS", "a@example.org; b@example.org")
    assert [str(a) for a in load_settings().operators] == ["a@example.org", "b@example.org"]


def test_a_table_from_the_environment_that_is_not_json_is_named(monkeypatch):
    monkeypatch.setenv("PRINTROOM_SHOPS", "main")
    with pytest.raises(SettingsError, match='error parsing value for field "shops".*give that variable as JSON'):
        load_settings()


def test_the_example_settings_file_is_valid():
    settings = load_settings(Path(__file__).resolve().parents[1] / "examples" / "printroom.toml")
    assert settings.sender.name == "Salle d'impression"
    assert settings.shop("university").default_language == "fr"
    assert settings.emails.for_trigger("order_in_production").send == "never"


def test_template_images_documents_and_languages_are_checked_when_the_settings_load(tmp_path):
    (tmp_path / "logo.svg").write_text("<svg/>")
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + bytes(1_100_000))
    path = write(tmp_path, f"""
languages = ["en", "fr"]
default_language = "de"
[templates]
images = {{ logo = "{tmp_path}/missing.png", mark = "{tmp_path}/logo.svg", big = "{tmp_path}/big.png" }}
[documents]
root = "{tmp_path}/no-such-store"
[emails.order_completed]
attachments = ["document", "invoice"]
[shops.campus]
default_language = "it"
""")
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    message = str(error.value)
    for expected in (
        f"templates.images: Value error, image logo = {tmp_path}/missing.png: file does not exist",
        "documents: Value error, root " + str(tmp_path / "no-such-store") + " is not a directory",
        "emails.order_completed.attachments.1: Input should be 'document', 'ticket' or 'preflight_report'",
    ):
        assert expected in message
    # Which languages are active: checked with the rest, named by the field that names an inactive one.
    for expected in ("default_language: Value error, 'de' is not one of the active languages ['en', 'fr']",
                     "shops: Value error, campus.default_language 'it' is not one of the active languages ['en', 'fr']"):
        assert expected in message, message
    path = write(tmp_path, 'timezone = "Europe/Pariss"\n')
    with pytest.raises(SettingsError, match=r"timezone: Value error, 'Europe/Pariss' is not a time zone name such as 'Europe/Paris'"):
        load_settings(path)
    path = write(tmp_path, '[emails.order_shipped]\nattachments = ["ticket"]\n')
    with pytest.raises(SettingsError, match=r"emails.order_shipped.attachments needs a document store: set documents.root"):
        load_settings(path)
    path = write(tmp_path, f'[templates]\nimages = {{ mark = "{tmp_path}/logo.svg" }}\n')
    with pytest.raises(SettingsError, match=r"image mark = .*logo.svg: not a .gif/.jpeg/.jpg/.png/.webp file"):
        load_settings(path)
    path = write(tmp_path, f'[templates]\nimages = {{ big = "{tmp_path}/big.png" }}\n')
    with pytest.raises(SettingsError, match=r"big.png: 1100004 bytes, over 1000000 \(make it smaller\)"):
        load_settings(path)


def test_editing_before_sending_where_it_is_not_offered_is_refused_naming_the_trigger(tmp_path):
    for trigger in ("order_received_operator", "approval_reminder", "approval_overdue", "budget_warning", "draft_waiting"):
        path = write(tmp_path, f"[emails.{trigger}]\nedit_before_send = true\n")
        with pytest.raises(SettingsError) as refused:
            load_settings(path)
        message = str(refused.value)
        assert f"edit_before_send is not offered for {trigger} (emails to operators and reminders are sent as they are)" in message
        assert "it is offered for: approval_cancelled, approval_requested, order_accepted," in message


def test_budget_and_cost_centres_are_read_as_written_and_bad_ones_named(tmp_path):
    path = write(tmp_path, """
[budget]
remind_every = "2d"
max_reminders = 1
on_timeout = "escalate"
escalate_to = "direktorin@bücher.example; cfo@example.org"

[cost_centres.marketing]
budget = 5000
warn_at_percent = 75
period = "year"
approvers = "cmo@example.org"
""")
    settings = load_settings(path)
    assert settings.budget.remind_every == timedelta(days=2)
    assert settings.budget.escalate_to == ["direktorin@bücher.example", "cfo@example.org"]
    marketing = settings.cost_centres["marketing"]
    assert (marketing.budget, marketing.currency, marketing.warn_at_percent, marketing.period) == (5000, "EUR", 75, "year")
    bad = {
        '[budget]\non_timeout = "escalate"\n': "budget: Value error, on_timeout = 'escalate' needs escalate_to",
        '[budget]\non_timeout = "shrug"\n': "budget.on_timeout: Input should be 'escalate', 'reject' or 'notify_operators'",
        '[cost_centres.lab]\nbudget = -1\n': "cost_centres.lab.budget: Input should be greater than 0",
        '[cost_centres.lab]\nbudget = "lots"\n': "cost_centres.lab.budget: Input should be a valid decimal",
        '[cost_centres.lab]\nbudget = 10\napprovers = "head@"\n': "cost_centres.lab.approvers.0: value is not a valid email address",
        '[cost_centres."lab/x"]\nbudget = 10\n': "cost_centres.lab/x.[key]: String should match pattern",
    }
    for toml, problem in bad.items():
        with pytest.raises(SettingsError) as refused:
            load_settings(write(tmp_path, toml))
        assert problem in str(refused.value), str(refused.value)


def test_drafts_settings_take_durations_as_people_write_them_and_name_bad_ones(tmp_path):
    path = write(tmp_path, """
[emails.order_shipped]
edit_before_send = true
[drafts]
operator_may_edit_cc = true
remind_after = "90m"
max_reminders = 5
[temporal]
ui_url = "https://temporal.example.org"
""")
    settings = load_settings(path)
    assert settings.emails.for_trigger("order_shipped").edit_before_send
    assert not settings.emails.for_trigger("order_accepted").edit_before_send
    rules = settings.drafts.rules()
    assert (rules.may_edit_cc, rules.may_attach, rules.remind_after.total_seconds(), rules.max_reminders) == (True, False, 5400, 5)
    bad = write(tmp_path, '[drafts]\nremind_after = "soon"\nmax_pending = 0\n[temporal]\nui_url = "temporal.example.org"\n[smtp]\ngive_up_after = "5s"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(bad)
    for field in ("drafts.remind_after", "drafts.max_pending", "temporal.ui_url", "smtp.give_up_after"):
        assert f"\n  {field}: " in str(refused.value), field


def test_a_sender_address_must_be_ascii_before_the_at_and_may_have_an_international_domain(tmp_path):
    assert load_settings(write(tmp_path, '[sender]\naddress = "druckerei@bücher.example"\n')).sender.address
    with pytest.raises(SettingsError, match="a sender address must be ASCII before the @"):
        load_settings(write(tmp_path, '[sender]\naddress = "müller@bücher.example"\n'))


def private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# What the worker, the plugin and `printroom web` read at start, each wrong: (settings file, what the line says).
BAD_AT_START = {
    "a web secret under 32 bytes": ("[web]\nsecret_file = '{d}/short'\n", "web: Value error, secret_file {d}/short holds 9 bytes; it must hold at least 32"),
    "a CA file that is not PEM": ("[smtp]\nsecurity = 'tls'\nca_file = '{d}/short'\n", "smtp: Value error, ca_file {d}/short holds no certificate TLS can use"),
    "an empty password file": ("[smtp]\nsecurity = 'tls'\nusername = 'u'\npassword_file = '{d}/empty'\n", "smtp: Value error, password_file {d}/empty is empty"),
    "a password file that is not UTF-8": ("[smtp]\nsecurity = 'tls'\nusername = 'u'\npassword_file = '{d}/latin1'\n", "password_file {d}/latin1 is not UTF-8 text"),
    "a password file that is missing": ("[smtp]\nsecurity = 'tls'\nusername = 'u'\npassword_file = '{d}/nope'\n", "password_file {d}/nope does not exist"),
    "a template override folder that is a file": ("[templates]\noverride_dir = '{d}/short'\n", "templates: Value error, override_dir {d}/short is not a directory"),
    "a document store that is not a folder": ("[documents]\nroot = '{d}/nope'\n", "documents: Value error, root {d}/nope is not a directory"),
    "a fingerprint that is not one": ("[smtp]\nsecurity = 'tls'\ntls_fingerprint = 'AB:CD'\n", "smtp.tls_fingerprint: Value error, 'AB:CD' is not a SHA-256 fingerprint"),
    "a user name trusting any certificate": (
        "[smtp]\nsecurity = 'tls'\nallow_self_signed = true\nusername = 'u'\npassword_file = '{d}/long'\n",
        "smtp: Value error, username with allow_self_signed would give the password to anyone",
    ),
    "a Temporal API key in the file": ("[temporal]\napi_key = 'k-123'\n", "temporal.api_key must not be written in the file in clear; set PRINTROOM_TEMPORAL__API_KEY"),
    "a delivery record folder behind a file": ("deliveries_dir = '{d}/short/deliveries'\n", "deliveries_dir: Value error, {d}/short/deliveries: {d}/short is a file, not a folder"),
    "a public address in clear": ("[web]\nsecret_file = '{d}/long'\npublic_url = 'http://printroom.example.com'\n", "public_url http://printroom.example.com: approvers' links and answers would travel in clear"),
}  # fmt: skip


def files_of_bad_settings(folder: Path) -> None:
    """The files BAD_AT_START's settings name, in `folder` (as `{d}`)."""
    private(folder / "short", "too-short")
    private(folder / "empty", "\n")
    private(folder / "long", "x" * 40)
    (folder / "latin1").write_bytes("mot-de-passe-été".encode("latin-1"))  # as an old editor saves it
    (folder / "latin1").chmod(0o600)


@pytest.mark.parametrize("case", list(BAD_AT_START))
def test_what_the_services_read_at_start_is_checked_by_the_settings_check_and_said_alike_in_one_line(tmp_path, case):
    """`printroom settings check` said OK to settings that then crashed the worker with a traceback; the plugin
    raised a bare ValueError. Now each of them, and `printroom web`, says the same one line, exit 2."""
    from concurrent.futures import ThreadPoolExecutor

    from printroom.worker.plugin import PrintroomPlugin

    files_of_bad_settings(tmp_path)
    text, says = (part.format(d=tmp_path) for part in BAD_AT_START[case])
    path = write(tmp_path, text)
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda command: printroom("--settings", str(path), *command), (["settings", "check"], ["worker"], ["web"])))
    for run in runs:
        assert (run.returncode, run.stdout) == (2, ""), run
        assert run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
    assert len({run.stderr for run in runs}) == 1  # the same words from each
    with pytest.raises(SettingsError) as refused:
        PrintroomPlugin(str(path)).settings  # noqa: B018  # validated on first use, as when a worker is built
    assert says in str(refused.value) and str(refused.value) in runs[0].stderr


def test_secret_and_password_files_others_may_read_are_named_with_the_chmod_to_run(tmp_path):
    secret, password = tmp_path / "web-secret", tmp_path / "smtp-password"
    for path in (secret, password):
        path.write_text("x" * 40)
        path.chmod(0o644)
    settings = write(tmp_path, f"[web]\nsecret_file = '{secret}'\n[smtp]\nsecurity = 'tls'\nusername = 'u'\npassword_file = '{password}'\n")
    run = printroom("settings", "check", "--settings", str(settings))
    assert run.returncode == 0, run.stderr
    assert f"secret_file {secret} is readable by group or others (mode 644): run `chmod 600 {secret}`" in run.stderr
    assert f"password_file {password} is readable by group or others (mode 644): run `chmod 600 {password}`" in run.stderr
    secret.chmod(0o600)
    password.chmod(0o400)
    assert "readable by group or others" not in printroom("settings", "check", "--settings", str(settings)).stderr


def test_every_problem_of_a_section_is_named_at_once(tmp_path):
    short = private(tmp_path / "short", "too-short")
    path = write(tmp_path, f"[web]\nsecret_file = '{short}'\npublic_url = 'http://printroom.example.com'\n"
                           f"[smtp]\nsecurity = 'tls'\nca_file = '{short}'\nallow_self_signed = true\nusername = 'u'\npassword_file = '{tmp_path / 'nope'}'\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    for said in ("holds 9 bytes", "would travel in clear", "ca_file " + str(short) + " holds no certificate", "nope does not exist",
                 "keep ca_file", "would give the password to anyone"):
        assert said in str(refused.value), str(refused.value)


# Problems in several places at once: (settings file, each line said: what it says, problem after problem).
ACROSS_SECTIONS = {
    "a short link secret and a short codec token": (
        "[web]\nsecret_file = '{d}/short'\ncodec_token_file = '{d}/short'\n",
        [("web: Value error, secret_file {d}/short holds 9 bytes", "; the codec token (PRINTROOM_WEB__CODEC_TOKEN or codec_token_file) holds 9 bytes")],
    ),
    "a codec open beyond the proxy and a short link secret": (
        "[web]\nsecret_file = '{d}/short'\ncodec_auth = 'proxy'\nhost = '0.0.0.0'\n",
        [("web: Value error, secret_file {d}/short holds 9 bytes", "; codec_auth = 'proxy' while printroom web listens on 0.0.0.0")],
    ),
    "a delivery record folder behind a file and a short link secret": (
        "deliveries_dir = '{d}/short/deliveries'\n[web]\nsecret_file = '{d}/short'\n",
        [("deliveries_dir: Value error, {d}/short/deliveries: {d}/short is a file, not a folder",), ("web: Value error, secret_file {d}/short holds 9 bytes",)],
    ),
    "inactive languages and attachments without a store beside a bad port": (
        "languages = ['en', 'fr']\ndefault_language = 'de'\n[smtp]\nport = 'twenty-five'\n[shops.campus]\ndefault_language = 'it'\n"
        "[shops.lab]\ndefault_language = 'es'\n[emails.order_shipped]\nattachments = ['ticket']\n",
        [("default_language: Value error, 'de' is not one of the active languages ['en', 'fr']",), ("smtp.port: Input should be a valid integer",),
         ("shops: Value error, campus.default_language 'it', lab.default_language 'es' are not one of the active languages",),
         ("documents: Value error, emails.order_shipped.attachments needs a document store: set documents.root",)],
    ),
    "a delivery record in PostgreSQL, whose folder is not used, and a short link secret": (
        "deliveries_dir = '{d}/short/deliveries'\n[deliveries]\nurl = 'postgresql://printroom@db.example.org/printroom'\n"
        "[web]\nsecret_file = '{d}/short'\n",
        [("web: Value error, secret_file {d}/short holds 9 bytes",)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ACROSS_SECTIONS))
def test_every_problem_is_named_at_once_whatever_else_is_wrong(tmp_path, case):
    """A 9-byte web.secret_file beside a 9-byte codec token was reported as the token alone, and a delivery record
    folder behind a file beside a short secret as the secret alone: each was found only once the other was fixed."""
    files_of_bad_settings(tmp_path)
    text, lines = ACROSS_SECTIONS[case]
    with pytest.raises(SettingsError) as refused:
        load_settings(write(tmp_path, text.format(d=tmp_path)))
    message = str(refused.value)
    said = message.split("\n  ")[1:] if "\n" in message else [message.split("): ", 1)[1]]
    assert len(said) == len(lines), message
    for parts in lines:
        assert any(all(part.format(d=tmp_path) in line for part in parts) for line in said), (parts, message)


def test_a_public_address_in_clear_is_for_localhost_only(monkeypatch):
    monkeypatch.setenv("PRINTROOM_WEB__SECRET", "y" * 32)
    for local in ("http://127.0.0.1:8377", "http://localhost:8377/", "http://[::1]:8377"):
        assert load_settings(None, web={"public_url": local}).web.public_url == local
    with pytest.raises(SettingsError, match="use https://"):
        load_settings(None, web={"public_url": "http://printroom.example.com:8377"})


def test_a_public_address_that_only_looks_local_is_refused(monkeypatch):
    """http://127.evil.com and http://127.0.0.1@evil.com/ passed as localhost: the second sent working Approve links
    in clear to evil.com (127.0.0.1 is its user name). Only a loopback address, localhost or *.localhost is local."""
    monkeypatch.setenv("PRINTROOM_WEB__SECRET", "y" * 32)
    for local in ("http://127.0.0.2:8377", "http://print.localhost:8377", "http://LOCALHOST", "http://[::1]/"):
        assert load_settings(None, web={"public_url": local}).web.public_url == local
    for public in ("http://127.evil.com", "http://127.0.0.1.evil.com:8377", "http://localhost.evil.com", "http://0.0.0.0:8377"):
        with pytest.raises(SettingsError, match="use https://"):
            load_settings(None, web={"public_url": public})
    for userinfo in ("http://127.0.0.1@evil.com/", "https://user:pw@printroom.example.com", "http://localhost@127.0.0.1"):
        with pytest.raises(SettingsError) as refused:
            load_settings(None, web={"public_url": userinfo})
        assert "public_url" in str(refused.value) and "user name" in str(refused.value), str(refused.value)


def test_a_broken_customised_template_is_named_by_settings_check_as_the_worker_names_it(tmp_path):
    """settings check said OK, and the worker then refused to start: both now name the template and line."""
    custom = tmp_path / "custom" / "fr"
    custom.mkdir(parents=True)
    (custom / "order_accepted.html.j2").write_text('{% extends "fr/_base.html.j2" %}{% block subject %}%Nope%{% endblock %}')
    path = write(tmp_path, f"[templates]\noverride_dir = '{custom.parent}'\n[temporal]\naddress = '127.0.0.1:1'\n")
    checked, worker = printroom("settings", "check", "--settings", str(path)), printroom("worker", "--settings", str(path))
    problem = "fr/order_accepted: template fr/order_accepted.html.j2 (customised), line 1: unknown variable %Nope%"
    assert checked.returncode == 2 and problem in checked.stderr and "Traceback" not in checked.stderr, checked.stderr
    assert worker.returncode == 1 and problem in worker.stderr, worker.stderr
    assert checked.stderr.split(": ", 1)[1] == worker.stderr.split(": ", 1)[1]  # the same words after the command's name
