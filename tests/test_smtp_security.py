"""SMTP security against real servers (aiosmtpd, certificates from trustme): TLS modes, AUTH, and `smtp test`."""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import AuthResult

from printroom.activities.smtp import DeliveryError, SmtpTransport
from printroom.cli.smtp_check import check_connection
from printroom.cli.capture import CapturedMessage
from printroom.settings import SettingsError, SmtpSettings, load_settings
from tests.conftest import free_port, run_printroom
from tests.smtp_tls import PASSWORD, USER, authenticator, ca, ca_file, server_cert, server_context  # noqa: F401  # fixtures

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

MESSAGE = b"From: printroom@example.com\r\nTo: marie@example.org\r\nSubject: TLS check\r\n\r\nHello\r\n"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[CapturedMessage] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(CapturedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.tls.append(session.ssl is not None)
        return "250 OK"


def sha256_of(cert: trustme.LeafCert) -> str:
    """The fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def start(controller: Controller) -> Controller:
    controller.start()
    return controller


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = start(Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context, require_starttls=True,
        authenticator=authenticator, auth_required=True,
    ))  # fmt: skip
    yield inbox, controller.port
    controller.stop()


@pytest.fixture
def implicit_tls_server(server_context: ssl.SSLContext) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    # aiosmtpd does not see implicit TLS as TLS for AUTH (and warns about it): the socket is TLS all the same.
    controller = start(Controller(
        inbox, hostname="127.0.0.1", port=free_port(), ssl_context=server_context,
        authenticator=authenticator, auth_required=True, auth_require_tls=False,
    ))  # fmt: skip
    yield inbox, controller.port
    controller.stop()


def smtp_settings(port: int, **fields: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=10, **fields)


async def send(settings: SmtpSettings) -> None:
    await SmtpTransport(settings).send(MESSAGE, envelope_from="printroom@example.com", recipients=["marie@example.org"])


async def test_starttls_with_authentication_delivers_over_tls(starttls_server, ca_file, monkeypatch):
    inbox, port = starttls_server
    monkeypatch.setenv("PRINTROOM_SMTP__PASSWORD", PASSWORD)
    await send(smtp_settings(port, security="starttls", ca_file=ca_file, username=USER, password=PASSWORD))
    assert [m.rcpt_tos for m in inbox.messages] == [["marie@example.org"]]
    assert inbox.tls == [True]
    assert b"Subject: TLS check" in inbox.messages[0].data


async def test_implicit_tls_with_a_password_file_delivers(implicit_tls_server, ca_file, tmp_path):
    inbox, port = implicit_tls_server
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    await send(smtp_settings(port, security="tls", ca_file=ca_file, username=USER, password_file=secret))
    assert len(inbox.messages) == 1


@pytest.mark.parametrize("excluded, used", [(["LOGIN"], "PLAIN"), (["PLAIN"], "LOGIN")])
async def test_auth_plain_and_auth_login_each_work(server_context, ca_file, excluded, used):
    inbox, mechanisms = Inbox(), []

    def recording(server, session, envelope, mechanism, auth_data):
        mechanisms.append(mechanism)
        return authenticator(server, session, envelope, mechanism, auth_data)

    controller = start(Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context, require_starttls=True,
        authenticator=recording, auth_required=True, auth_exclude_mechanism=excluded,
    ))  # fmt: skip
    try:
        await send(smtp_settings(controller.port, security="starttls", ca_file=ca_file, username=USER, password=PASSWORD))
    finally:
        controller.stop()
    assert mechanisms == [used]
    assert len(inbox.messages) == 1


async def test_an_untrusted_certificate_is_refused_permanently_with_what_to_set(starttls_server):
    inbox, port = starttls_server
    with pytest.raises(DeliveryError) as error:
        await send(smtp_settings(port, security="starttls", username=USER, password=PASSWORD))
    assert error.value.permanent
    assert "the certificate of 127.0.0.1 is not trusted; set smtp.ca_file" in str(error.value)
    assert inbox.messages == []


async def test_allow_self_signed_accepts_a_certificate_it_cannot_verify(implicit_tls_server, server_cert):
    inbox, port = implicit_tls_server
    # Logging in needs the certificate pinned (written in any case, with colons or not).
    pin = sha256_of(server_cert).lower().replace(":", "")
    await send(smtp_settings(port, security="tls", allow_self_signed=True, tls_fingerprint=pin, username=USER, password=PASSWORD))
    assert len(inbox.messages) == 1


@pytest.fixture
def intruder() -> Iterator[tuple[Inbox, int, list[str], trustme.LeafCert]]:
    """A relay between us and the server: a certificate for 127.0.0.1 from a CA of its own (anyone can make one),
    recording every AUTH it is offered."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    inbox, offered = Inbox(), []

    def recording(server, session, envelope, mechanism, auth_data):
        offered.append(f"{mechanism} {auth_data.login!r} {auth_data.password!r}")
        return AuthResult(success=True, handled=False)

    controller = start(Controller(
        inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context,
        authenticator=recording, auth_required=True, auth_require_tls=False,
    ))  # fmt: skip
    yield inbox, controller.port, offered, cert
    controller.stop()


async def test_a_relay_whose_certificate_no_one_vouches_for_gets_no_password(intruder, server_cert, monkeypatch):
    """allow_self_signed took any certificate naming the host, and then logged in: a man in the middle got the
    password. A user name with it now needs the server's certificate pinned, checked before AUTH."""
    inbox, port, offered, intruder_cert = intruder
    with pytest.raises(SettingsError, match="pin the server's certificate: smtp.ca_file = that certificate, or smtp.tls_fingerprint") as refused:
        load_settings(None, smtp={"host": "127.0.0.1", "port": port, "security": "tls", "allow_self_signed": True, "username": USER, "password": PASSWORD})
    assert PASSWORD not in str(refused.value)

    pinned = smtp_settings(port, security="tls", allow_self_signed=True, tls_fingerprint=sha256_of(server_cert), username=USER, password=PASSWORD)
    with pytest.raises(DeliveryError) as error:
        await send(pinned)
    assert error.value.permanent
    assert f"has SHA-256 fingerprint {sha256_of(intruder_cert)}, not {sha256_of(server_cert)} (smtp.tls_fingerprint)" in str(error.value)
    steps = await check_connection(pinned)
    assert (steps[-1].name, steps[-1].ok) == ("tls", False) and sha256_of(intruder_cert) in steps[-1].detail
    assert offered == [] and inbox.messages == []  # no AUTH, no message: the password never left


async def test_smtp_test_prints_the_fingerprint_to_pin(implicit_tls_server, server_cert, tmp_path):
    _, port = implicit_tls_server
    toml = tmp_path / "printroom.toml"
    toml.write_text(f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'tls'\nallow_self_signed = true\n")
    shown = run_printroom("smtp", "test", "--settings", str(toml))
    assert shown.returncode == 0, shown.stderr
    assert f"SHA-256 fingerprint {sha256_of(server_cert)}" in shown.stdout
    with open(toml, "a") as more:
        more.write(f"tls_fingerprint = '{sha256_of(server_cert)}'\nusername = '{USER}'\npassword_file = '{toml}'\n")
    assert "certificate pinned by smtp.tls_fingerprint" in run_printroom("smtp", "test", "--settings", str(toml)).stdout


def test_a_fingerprint_that_is_not_a_sha256_is_named():
    with pytest.raises(ValueError, match="'AB:CD' is not a SHA-256 fingerprint"):
        smtp_settings(465, security="tls", tls_fingerprint="AB:CD")
    with pytest.raises(ValueError, match="tls_fingerprint needs security = 'starttls' or 'tls'"):
        smtp_settings(25, tls_fingerprint="AB" * 32)


async def test_rejected_credentials_are_permanent_and_name_the_user_not_the_password(starttls_server, ca_file):
    _, port = starttls_server
    with pytest.raises(DeliveryError) as error:
        await send(smtp_settings(port, security="starttls", ca_file=ca_file, username=USER, password="wrong-" + PASSWORD))
    assert error.value.permanent
    assert f"rejected the credentials of '{USER}' (535 5.7.8 Authentication credentials invalid)" in str(error.value)
    assert PASSWORD not in str(error.value)


async def test_starttls_against_a_server_without_it_is_a_settings_error(smtp):
    with pytest.raises(DeliveryError) as error:
        await send(smtp_settings(smtp.port, security="starttls"))
    assert error.value.permanent and "check smtp.security" in str(error.value)


def test_the_port_follows_the_security_mode_unless_given():
    assert [SmtpSettings(security=s).effective_port for s in ("none", "starttls", "tls")] == [25, 587, 465]
    assert SmtpSettings(security="tls", port=2465).effective_port == 2465


def test_a_password_in_the_settings_file_is_refused(tmp_path):
    path = tmp_path / "printroom.toml"
    path.write_text(f"[smtp]\nusername = '{USER}'\npassword = '{PASSWORD}'\n")
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    assert "smtp.password must not be written in the file in clear; set PRINTROOM_SMTP__PASSWORD" in str(error.value)
    assert PASSWORD not in str(error.value)


def test_incoherent_authentication_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="username is set but no password"):
        SmtpSettings(username=USER)
    with pytest.raises(ValueError, match="password_file .* does not exist"):
        SmtpSettings(username=USER, password_file=tmp_path / "nope")
    with pytest.raises(ValueError, match="need security = 'starttls' or 'tls'"):
        SmtpSettings(allow_self_signed=True)


# --- printroom smtp test (S7)


async def test_the_connection_test_reports_every_step_when_all_is_well(starttls_server, ca_file):
    _, port = starttls_server
    steps = await check_connection(smtp_settings(port, security="starttls", ca_file=ca_file, username=USER, password=PASSWORD))
    assert [(s.name, s.ok) for s in steps] == [
        ("resolve", True), ("connect", True), ("greeting", True), ("tls", True), ("authentication", True)
    ]
    assert steps[3].detail.startswith("TLSv1.3, certificate for ")
    assert " verified, valid until " in steps[3].detail
    assert steps[4].detail == f"logged in as {USER}"


async def test_the_connection_test_names_an_untrusted_certificate(implicit_tls_server):
    _, port = implicit_tls_server
    steps = await check_connection(smtp_settings(port, security="tls", username=USER, password=PASSWORD))
    assert (steps[-1].name, steps[-1].ok) == ("tls", False)
    assert "not trusted; set smtp.ca_file" in steps[-1].detail


async def test_the_connection_test_names_rejected_credentials(starttls_server, ca_file):
    _, port = starttls_server
    steps = await check_connection(smtp_settings(port, security="starttls", ca_file=ca_file, username=USER, password="nope"))
    assert (steps[-1].name, steps[-1].ok) == ("authentication", False)
    assert f"credentials of '{USER}' rejected (535" in steps[-1].detail


async def test_the_connection_test_names_a_server_that_never_greets():
    with socket.socket() as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = SmtpSettings(host="127.0.0.1", port=silent.getsockname()[1], timeout_seconds=1)
        steps = await check_connection(settings)
    assert [(s.name, s.ok) for s in steps] == [("resolve", True), ("connect", True), ("greeting", False)]
    assert "no SMTP greeting within 1s" in steps[-1].detail


async def test_the_connection_test_names_implicit_tls_spoken_to_a_starttls_port(starttls_server, ca_file):
    _, port = starttls_server
    steps = await check_connection(smtp_settings(port, security="tls", ca_file=ca_file))
    assert (steps[-1].name, steps[-1].ok) == ("tls", False)
    assert "For port 587 use smtp.security = 'starttls'" in steps[-1].detail


async def test_the_connection_test_names_an_unknown_host():
    steps = await check_connection(SmtpSettings(host="no-such-host.invalid", timeout_seconds=2))
    assert (steps[-1].name, steps[-1].ok) == ("resolve", False)
    assert "no-such-host.invalid cannot be resolved" in steps[-1].detail


printroom = run_printroom


def test_smtp_test_exits_non_zero_naming_the_failed_step_and_never_prints_the_password(starttls_server, ca_file):
    _, port = starttls_server
    env = {"PRINTROOM_SMTP__HOST": "127.0.0.1", "PRINTROOM_SMTP__PORT": str(port), "PRINTROOM_SMTP__SECURITY": "starttls",
           "PRINTROOM_SMTP__CA_FILE": str(ca_file), "PRINTROOM_SMTP__USERNAME": USER}  # fmt: skip
    good = printroom("smtp", "test", PRINTROOM_SMTP__PASSWORD=PASSWORD, **env)
    bad = printroom("smtp", "test", PRINTROOM_SMTP__PASSWORD="x" + PASSWORD, **env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1] == "OK"
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-1] == "FAILED at authentication"
    for run in (good, bad):
        assert PASSWORD not in run.stdout + run.stderr


def test_smtp_send_test_sends_an_email_that_lists_the_settings_used(starttls_server, ca_file, tmp_path):
    inbox, port = starttls_server
    run = printroom(
        "smtp", "send-test", "--to", "admin@example.org",
        PRINTROOM_SMTP__PORT=str(port), PRINTROOM_SMTP__SECURITY="starttls", PRINTROOM_SMTP__CA_FILE=str(ca_file),
        PRINTROOM_SMTP__USERNAME=USER, PRINTROOM_SMTP__PASSWORD=PASSWORD, PRINTROOM_SENDER__NAME="Druckerei Müller",
        PRINTROOM_SENDER__CC="archive@example.org", PRINTROOM_DELIVERIES_DIR=str(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "sent 'printroom test email: your SMTP settings work' to admin@example.org" in run.stdout
    message = inbox.messages[0].parsed()
    assert inbox.messages[0].rcpt_tos == ["admin@example.org", "archive@example.org"]
    assert (message["To"], message["Cc"]) == ("admin@example.org", "archive@example.org")
    assert str(message["From"]) == "Druckerei Müller <printroom@example.com>"
    text = message.get_body(("plain",)).get_content()
    assert f"127.0.0.1:{port}" in text and "starttls" in text and USER in text
    assert PASSWORD not in inbox.messages[0].data.decode()


class Busy:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "451 4.3.0 try again later"


def test_smtp_send_test_that_fails_in_passing_says_what_to_do_not_that_it_will_be_retried(tmp_path):
    """It said "it will be retried", as a worker's email is; this command retries nothing."""
    busy = start(Controller(Busy(), hostname="127.0.0.1", port=free_port()))
    try:
        runs = {port: printroom("smtp", "send-test", "--to", "admin@example.org", PRINTROOM_SMTP__PORT=str(port),
                                PRINTROOM_DELIVERIES_DIR=str(tmp_path)) for port in (free_port(), busy.port)}  # fmt: skip
    finally:
        busy.stop()
    for port, run in runs.items():
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("printroom smtp send-test: not sent: ") and "retried" not in run.stderr, run.stderr
        assert "nothing was sent: `printroom smtp test` shows which step fails; send again once it passes" in run.stderr
    (closed,) = set(runs) - {busy.port}
    assert "cannot reach the SMTP server" in runs[closed].stderr and "answered 451 4.3.0 try again later" in runs[busy.port].stderr


async def test_the_password_never_reaches_history_queries_or_logs(dev_env, starttls_server, ca_file, settings, task_queue, caplog):
    import logging

    from tests.conftest import history_bytes, sample_order
    from printroom.worker.main import build_worker
    from printroom.workflows.order import OrderWorkflow

    caplog.set_level(logging.DEBUG)
    inbox, port = starttls_server
    secured = settings.model_copy(update={"smtp": smtp_settings(
        port, security="starttls", ca_file=ca_file, username=USER, password=PASSWORD)})  # fmt: skip
    client = dev_env.client
    async with build_worker(client, secured, task_queue=task_queue):
        order = sample_order()
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "cancel"})
        state = await handle.result()
        queried = await handle.query("state")
    assert len(inbox.messages) == 4 and all(inbox.tls)  # received x2, cancelled x2 (customer, operators): all TLS
    history = await history_bytes(handle)
    assert order["customer"]["email"].encode() in history  # payloads are read as their bytes, not base64
    assert USER.encode() not in history and PASSWORD.encode() not in history  # the workflow never sees settings
    for where, text in (("state query", str(queried)), ("result", state.model_dump_json()), ("logs", caplog.text),
                        ("messages", b"".join(m.data for m in inbox.messages).decode())):
        assert PASSWORD not in text, f"the password appears in the {where}"


@pytest.fixture
def offering_starttls(server_context: ssl.SSLContext) -> Iterator[tuple[Inbox, int]]:
    """A relay that offers STARTTLS without requiring it, and AUTH over it."""
    inbox = Inbox()
    controller = start(Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context, require_starttls=False,
        authenticator=authenticator, auth_required=False,
    ))  # fmt: skip
    yield inbox, controller.port
    controller.stop()


async def test_security_none_still_encrypts_when_the_server_offers_starttls_unless_told_not_to(offering_starttls):
    inbox, port = offering_starttls
    await send(smtp_settings(port))  # security = "none", opportunistic_tls on by default
    await send(smtp_settings(port, opportunistic_tls=False))
    assert inbox.tls == [True, False]


def test_auth_without_verified_tls_is_a_settings_error_unless_allowed(smtp, ca_file):
    """security = 'none' would log in in clear, or over opportunistic TLS trusting any certificate."""
    with pytest.raises(SettingsError, match="sends the password in clear, or over opportunistic TLS") as refused:
        load_settings(None, smtp={"port": smtp.port, "username": USER, "password": PASSWORD})
    assert "security = 'starttls' or 'tls'" in str(refused.value) and PASSWORD not in str(refused.value)
    assert smtp_settings(smtp.port, username=USER, password=PASSWORD, allow_plaintext_auth=True).username == USER
    with pytest.raises(ValueError, match="keep ca_file"):
        smtp_settings(smtp.port, security="tls", allow_self_signed=True, ca_file=ca_file)


async def test_opportunistic_starttls_that_fails_goes_on_in_clear(server_context: ssl.SSLContext):
    """A relay offering STARTTLS and then refusing it (454): as mail servers do among themselves, the email still
    goes, in clear, instead of retrying for a day."""

    class Says454(SMTP):
        async def smtp_STARTTLS(self, arg: str) -> None:
            await self.push("454 4.7.0 TLS not available right now")

    class Says454Controller(Controller):
        def factory(self) -> SMTP:
            return Says454(self.handler, **self.SMTP_kwargs)

    inbox = Inbox()
    controller = start(Says454Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context))
    try:
        await send(smtp_settings(controller.port))
    finally:
        controller.stop()
    assert inbox.tls == [False] and len(inbox.messages) == 1


async def test_allow_self_signed_still_checks_the_host_name(ca: trustme.CA, tmp_path):
    elsewhere = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.elsewhere.example").configure_cert(elsewhere)
    inbox = Inbox()
    controller = start(Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=elsewhere))
    try:
        with pytest.raises(DeliveryError) as refused:
            await send(smtp_settings(controller.port, security="tls", allow_self_signed=True))
        steps = await check_connection(smtp_settings(controller.port, security="tls", allow_self_signed=True))
    finally:
        controller.stop()
    assert refused.value.permanent and inbox.messages == []
    assert "the certificate of 127.0.0.1 is for mail.elsewhere.example, not 127.0.0.1" in str(refused.value)
    assert (steps[-1].name, steps[-1].ok) == ("tls", False) and "is for mail.elsewhere.example" in steps[-1].detail


def test_smtp_test_against_another_certificate_than_the_pinned_one_says_failed_and_never_ok(intruder, server_cert, tmp_path):
    """`smtp test` printed "ok tls ... certificate pinned" and then "FAILED tls ... not <pin>" for the same
    connection: the administrator read both. The TLS line is now written after the check, once."""
    _, port, offered, intruder_cert = intruder
    toml = tmp_path / "printroom.toml"
    toml.write_text(f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'tls'\nallow_self_signed = true\n"
                    f"tls_fingerprint = '{sha256_of(server_cert)}'\n")  # fmt: skip
    shown = run_printroom("smtp", "test", "--settings", str(toml))
    tls_lines = [line.split() for line in shown.stdout.splitlines() if line.split()[1:2] == ["tls"]]
    assert shown.returncode == 1 and shown.stdout.splitlines()[-1] == "FAILED at tls", shown.stdout
    assert [line[0] for line in tls_lines] == ["FAILED"], shown.stdout
    assert f"fingerprint {sha256_of(intruder_cert)}, not {sha256_of(server_cert)}" in shown.stdout
    assert offered == []


async def test_the_servers_own_certificate_as_ca_file_pins_it_and_an_impostor_gets_no_password(starttls_server, server_cert, intruder, tmp_path):
    """The settings advise `smtp.ca_file = that certificate` to pin a server; a certificate issued by a private CA,
    given alone, was refused ("unable to get local issuer certificate"). It is now trusted as itself, and only it."""
    inbox, port = starttls_server
    pinned = tmp_path / "relay-certificate.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(pinned))  # the leaf alone, not its CA
    await send(smtp_settings(port, security="starttls", ca_file=pinned, username=USER, password=PASSWORD))
    assert len(inbox.messages) == 1 and inbox.tls == [True]  # the relay requires AUTH: it took the password
    impostor, impostor_port, offered, _ = intruder  # a certificate for 127.0.0.1 all the same
    with pytest.raises(DeliveryError) as error:
        await send(smtp_settings(impostor_port, security="tls", ca_file=pinned, username=USER, password=PASSWORD))
    assert error.value.permanent and "the certificate of 127.0.0.1 is not trusted" in str(error.value)
    assert "smtp.tls_fingerprint = its SHA-256" in str(error.value) and "allow_self_signed" not in str(error.value)
    assert offered == [] and impostor.messages == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_an_untrusted_certificate_is_named_with_its_fingerprint_to_pin(security, implicit_tls_server, starttls_server, server_cert):
    """On a certificate whose chain does not verify, `smtp test` named no fingerprint: the administrator who would pin
    it had to find it elsewhere. Now the fingerprint seen is said beside the advice."""
    _, port = implicit_tls_server if security == "tls" else starttls_server
    steps = await check_connection(smtp_settings(port, security=security))
    assert (steps[-1].name, steps[-1].ok) == ("tls", False)
    assert "not trusted; set smtp.ca_file" in steps[-1].detail
    assert f"its certificate has SHA-256 fingerprint {sha256_of(server_cert)}" in steps[-1].detail, steps[-1].detail


def test_a_fingerprint_as_openssl_prints_it_is_taken(server_cert):
    """`openssl x509 -noout -fingerprint -sha256` prints `sha256 Fingerprint=AB:...` (OpenSSL 3; `SHA256
    Fingerprint=` before): pasted whole, it was refused."""
    for printed in (f"sha256 Fingerprint={sha256_of(server_cert)}", f"SHA256 Fingerprint={sha256_of(server_cert).lower()}"):
        assert smtp_settings(465, security="tls", tls_fingerprint=printed).tls_fingerprint == sha256_of(server_cert)
