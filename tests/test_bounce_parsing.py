"""Pure: each bounce format read into the failed recipients and the Message-ID of the email that bounced; what is
not a bounce is said so."""

from __future__ import annotations

import time

import pytest

from printroom.activities.bounces import MAX_BYTES, FailedRecipient, read_message
from printroom.message_ids import parse_message_id
from printroom.settings import Settings, load_settings, SettingsError
from tests import bounce_samples as samples
from tests.conftest import run_printroom


@pytest.mark.parametrize(
    ("sample", "recipient", "status"),
    [
        (samples.postfix_user_unknown, "nobody@example.org", "5.1.1"),
        (samples.gmail_address_not_found, "typo@gmail.example", "5.1.1"),
        (samples.exchange_ndr, "m.curie@contoso.example", "5.1.10"),
        (samples.exchange_legacy, "buyer@legacy.example", "5.0.0"),
        (samples.qmail_qsbmf, "gone@qmail.example", "5.1.1"),
    ],
)
def test_each_servers_bounce_names_the_failed_recipient_and_printrooms_email(sample, recipient, status):
    reading = read_message(sample())
    assert reading.verdict == "bounce"
    assert [(f.recipient, f.status, f.permanent) for f in reading.failed] == [(recipient, status, True)]
    assert reading.message_id == samples.OURS and reading.ours
    assert parse_message_id(reading.message_id).order_id == "PO-42"


def test_the_dsn_diagnostic_is_the_remote_servers_words():
    (failed,) = read_message(samples.postfix_user_unknown()).failed
    assert failed.diagnostic == "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"
    assert "Sorry, no mailbox here by that name" in read_message(samples.qmail_qsbmf()).failed[0].diagnostic


def test_a_dsn_with_several_recipients_reports_only_the_one_that_failed():
    reading = read_message(samples.several_recipients_one_failed())
    assert reading.failed == (FailedRecipient("marie@example.org", "5.2.2", True, "552 5.2.2 Mailbox full"),)


def test_a_delayed_delivery_is_a_temporary_bounce():
    (failed,) = read_message(samples.delayed()).failed
    assert (failed.status, failed.permanent) == ("4.4.1", False)


def test_a_bounce_in_latin1_with_utf8_addresses_reads_both():
    (failed,) = read_message(samples.latin1_bounce()).failed
    assert failed.recipient == "müller@xn--bcher-kva.example"
    assert failed.diagnostic == "550 5.1.1 Empfänger unbekannt"


def test_a_bounce_of_someone_elses_email_is_a_bounce_that_is_not_ours():
    reading = read_message(samples.foreign_bounce())
    assert reading.verdict == "bounce" and reading.message_id == "<abc123@elsewhere.example>" and not reading.ours


def test_an_out_of_office_reply_is_not_a_bounce():
    reading = read_message(samples.out_of_office())
    assert (reading.verdict, reading.failed) == ("auto_reply", ())


def test_a_persons_reply_is_not_a_bounce():
    assert read_message(samples.customer_reply()).verdict == "not_a_bounce"


def test_a_20_mb_bounce_is_read_from_its_first_bytes_only():
    raw = samples.huge_bounce()
    assert len(raw) > 20 * 1024 * 1024
    started = time.perf_counter()
    reading = read_message(raw)
    assert time.perf_counter() - started < 1.0  # the whole message parsed would take seconds and 100s of MB
    assert reading.failed[0].recipient == "nobody@example.org" and reading.ours
    assert read_message(raw[:MAX_BYTES]) == reading


@pytest.mark.parametrize("garbage", [b"", b"\x00\xff" * 1000, b"Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n\xff"])
def test_garbage_is_not_a_bounce_and_does_not_raise(garbage):
    assert read_message(garbage).verdict == "not_a_bounce"


def test_a_delivery_report_that_reports_no_recipient_is_malformed():
    assert read_message(samples.broken_report()).verdict == "malformed"
    delivered = samples.several_recipients_one_failed().replace(b"Action: failed", b"Action: delivered")
    assert read_message(delivered).verdict == "not_a_bounce"  # a report of success: nothing failed


def test_bounces_settings_name_each_problem_and_the_password_never_in_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PRINTROOM_BOUNCES__PASSWORD", raising=False)
    with pytest.raises(Exception) as refused:
        Settings(bounces={"host": "imap.example.net", "username": "bounces", "security": "none", "processed": "folder:INBOX"})
    said = str(refused.value)
    assert "PRINTROOM_BOUNCES__PASSWORD" in said and "in clear" in said and "processed must be another folder" in said
    toml = tmp_path / "printroom.toml"
    toml.write_text('[bounces]\nhost = "imap.example.net"\nusername = "bounces"\npassword = "s3cret"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="bounces.password must not be written in the file in clear; set PRINTROOM_BOUNCES__PASSWORD or name a file in bounces.password_file"):
        load_settings(toml)
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o600)
    toml.write_text(f'[bounces]\nhost = "imap.example.net"\nusername = "bounces"\npassword_file = "{tmp_path / "pw"}"\nprocessed = "delete"\n', encoding="utf-8")
    bounces = load_settings(toml).bounces
    assert (bounces.effective_port, bounces.security, bounces.processed_folder, bounces.secret()) == (993, "tls", None, "s3cret")
    assert "s3cret" not in repr(bounces) and "s3cret" not in bounces.model_dump_json()
    assert Settings(bounces={"host": "127.0.0.1", "username": "b", "password": "x", "security": "none"}).bounces.effective_port == 143


def test_settings_check_names_the_bounce_mailbox_and_refuses_a_bad_one(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[bounces]\nhost = "imap.example.net"\nusername = "bounces@example.net"\nprocessed = "delete"\n', encoding="utf-8")
    run = run_printroom("--settings", str(good), "settings", "check", PRINTROOM_BOUNCES__PASSWORD="s3cret")
    assert run.returncode == 0, run.stderr
    assert "bounces: bounces@example.net at IMAP imap.example.net:993 (tls), folder 'INBOX' every 0:01:00; processed: delete" in run.stdout
    assert "s3cret" not in run.stdout + run.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[bounces]\nhost = "imap.example.net"\nusername = "b"\nsecurity = "none"\nunmatched_folder = "INBOX"\n', encoding="utf-8")
    run = run_printroom("--settings", str(bad), "settings", "check")
    assert run.returncode == 2
    assert "bounces: Value error, no password: set PRINTROOM_BOUNCES__PASSWORD" in run.stderr
    assert "unmatched_folder must be another folder than folder" in run.stderr and "in clear" in run.stderr
