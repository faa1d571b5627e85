"""Signed links alone, and the web secret's settings: what a link names, when it stops working, what breaks it,
and a service that will not start without a secret it can trust."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from printroom.links import ApprovalLink, DraftLink, LinkError, LinkSigner, SecretTooShort
from printroom.settings import SettingsError, load_settings
from tests.conftest import free_port, run_printroom

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)
SIGNER = LinkSigner(b"k" * 32)


def test_an_approval_link_names_the_order_the_approver_and_the_decision_until_it_expires():
    link = ApprovalLink("PO-1002", "chefin@bücher.example", "approve", NOW + timedelta(days=4), NOW - timedelta(days=1))
    token = SIGNER.approval(link)
    assert token.isascii() and "/" not in token and "+" not in token  # safe in a URL path as it is
    assert SIGNER.read_approval(token, NOW) == link.__class__(**{**link.__dict__, "asked": link.asked.replace(microsecond=0)})
    with pytest.raises(LinkError) as expired:
        SIGNER.read_approval(token, NOW + timedelta(days=4))
    assert (expired.value.problem, expired.value.expired) == ("expired", link.expires)
    assert str(expired.value) == "this link expired on 03 Dec 2026 at 10:00 UTC"


@pytest.mark.parametrize(
    "change,problem",
    [
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "tampered"),  # the signature
        (lambda t: "eyJvcmRlciI6IlBPLTkifQ" + t[t.index("."):], "tampered"),  # the payload, signature kept
        (lambda t: t[: len(t) // 2], "tampered"),  # cut when copied
        (lambda t: "not-a-token", "tampered"),
    ],
)
def test_a_changed_link_is_refused_as_tampered(change, problem):
    token = SIGNER.approval(ApprovalLink("PO-1002", "head@example.org", "reject", NOW + timedelta(days=1), NOW))
    with pytest.raises(LinkError) as refused:
        SIGNER.read_approval(change(token), NOW)
    assert refused.value.problem == problem


def test_links_of_one_kind_or_one_secret_are_not_taken_for_another():
    draft = SIGNER.draft(DraftLink("PO-1", "<PO-1.order_accepted.1.customer@example.com>", NOW + timedelta(days=1)))
    assert SIGNER.read_draft(draft, NOW).message_id == "<PO-1.order_accepted.1.customer@example.com>"
    with pytest.raises(LinkError, match="signature does not match"):
        SIGNER.read_approval(draft, NOW)  # a preview link never decides anything
    other = LinkSigner(b"o" * 32)
    with pytest.raises(LinkError, match="signature does not match"):
        other.read_draft(draft, NOW)


def test_a_secret_under_32_bytes_is_refused():
    with pytest.raises(SecretTooShort, match="the web secret is 31 bytes; it must be at least 32"):
        LinkSigner(b"s" * 31)


def test_the_secret_is_never_in_the_settings_file_and_never_short(tmp_path: Path, monkeypatch):
    toml = tmp_path / "printroom.toml"
    toml.write_text('[web]\nsecret = "' + "x" * 40 + '"\n')
    with pytest.raises(SettingsError, match=r"web.secret must not be written in the file in clear; set PRINTROOM_WEB__SECRET or name a file in web.secret_file"):
        load_settings(toml)
    toml.write_text('[web]\npublic_url = "https://printroom.example.com"\n')
    with pytest.raises(SettingsError, match="public_url is set but no secret to sign links with: set PRINTROOM_WEB__SECRET or web.secret_file"):
        load_settings(toml)
    monkeypatch.setenv("PRINTROOM_WEB__SECRET", "too-short")
    with pytest.raises(SettingsError, match=r"web: Value error, secret \(PRINTROOM_WEB__SECRET\) is shorter than 32 bytes"):
        load_settings(toml)
    monkeypatch.setenv("PRINTROOM_WEB__SECRET", "y" * 32)
    settings = load_settings(toml)
    assert "y" * 32 not in repr(settings) and "y" * 32 not in settings.model_dump_json()  # never printed or dumped


def test_the_public_address_is_the_root_of_a_host(monkeypatch):
    monkeypatch.setenv("PRINTROOM_WEB__SECRET", "y" * 32)
    for good in ("https://printroom.example.com", "http://127.0.0.1:8377/", "https://xn--bcher-kva.example"):
        assert load_settings(None, web={"public_url": good}).web.public_url == good
    with pytest.raises(SettingsError, match="web.public_url"):
        load_settings(None, web={"public_url": "https://example.com/printroom"})  # its own links start at /


def test_printroom_web_refuses_to_start_without_a_usable_secret(tmp_path: Path):
    port = str(free_port())
    missing = run_printroom("web", PRINTROOM_WEB__PORT=port, cwd=tmp_path)
    assert missing.returncode == 2
    assert "printroom web: no secret to check links with: set PRINTROOM_WEB__SECRET or web.secret_file" in missing.stderr
    short = tmp_path / "web-secret"
    short.write_text("only-twenty-bytes-xx\n")
    short.chmod(0o600)
    too_short = run_printroom("web", PRINTROOM_WEB__PORT=port, PRINTROOM_WEB__SECRET_FILE=str(short), cwd=tmp_path)
    assert too_short.returncode == 2
    # Said by the settings' validation, as `printroom settings check` and the worker say it: one line.
    assert too_short.stderr.startswith("printroom: invalid settings (defaults and PRINTROOM_* variables): web: ")
    assert f"secret_file {short} holds 20 bytes; it must hold at least 32" in too_short.stderr
    assert len(too_short.stderr.splitlines()) == 1, too_short.stderr
