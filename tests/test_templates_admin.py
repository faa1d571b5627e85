"""`printroom templates …` as an administrator uses it: check, variables, preview, customize, reset; and the
worker refusing to start on a broken template."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

from printroom.statemachines.emails import EMAIL_TRIGGERS
from printroom.worker.template_check import check_templates
from printroom.settings import Settings, SettingsError, load_settings
from tests.conftest import free_port, run_printroom
from tests.test_compose import PNG


@pytest.fixture
def room(tmp_path: Path) -> Path:
    """A print room's directory: settings naming a logo and an override directory, as a user writes them."""
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "printroom.toml").write_text(
        'languages = ["en", "fr", "de"]\n'
        "[templates]\noverride_dir = 'custom'\nimages = { logo = 'logo.png' }\n"
        "[shops.default]\norder_url = 'https://shop.example.com/orders/{order_id}'\n",
        encoding="utf-8",
    )
    return tmp_path


def templates(room: Path, *args: str) -> tuple[int, str, str]:
    run = run_printroom("templates", *args, cwd=room)
    return run.returncode, run.stdout, run.stderr


def override(room: Path, file: str, source: str) -> None:
    path = room / "custom" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_the_shipped_templates_pass_the_check_in_every_language(room):
    code, out, _ = templates(room, "check")
    assert code == 0
    assert "templates OK: every email in en, fr, de (custom over the shipped templates)" in out


def test_the_check_lists_every_missing_translation_and_every_broken_template(room, tmp_path):
    settings = Settings(
        languages=["en", "it"],
        templates={"override_dir": tmp_path / "custom"},
    )
    override(tmp_path, "en/order_shipped.html.j2", '{% extends "en/_base.html.j2" %}\n{% block subject %}Sent %OrdreNumber%{% endblock %}')
    override(tmp_path, "en/order_accepted.html.j2", '{% extends "en/_base.html.j2" %}{% block subject %}x{% endblock %}\n{% block body %}{% if false %}{{ Foo }}{% endif %}{% endblock %}')
    override(tmp_path, "en/order_shiped.html.j2", "typo in the name")
    problems = [str(p) for p in check_templates(settings)]
    missing = [p for p in problems if p.startswith("it/") and "missing; add" in p]
    assert len(missing) == len(EMAIL_TRIGGERS) + 1 == 17  # every email trigger and the SMTP test email
    assert f"it/order_accepted: missing; add {tmp_path / 'custom' / 'it' / 'order_accepted.html.j2'}" in problems
    assert any(
        "en/order_shipped.html.j2 (customised), line 2: unknown variable %OrdreNumber%; did you mean %OrderNumber%?" in p
        for p in problems
    )
    # A name in a branch the sample order never takes is found all the same.
    assert any("en/order_accepted.html.j2 (customised), line 2: unknown variable 'Foo'" in p for p in problems)
    assert any(p.endswith("order_shiped.html.j2: not a template of any email; check its name (<lang>/<trigger>.html.j2)") for p in problems)


def test_the_check_command_exits_non_zero_listing_the_problems(room):
    override(room, "fr/order_rejected.html.j2", '{% extends "fr/_base.html.j2" %}{% block subject %}%BeginJob%{% endblock %}')
    code, out, _ = templates(room, "check")
    assert code == 1
    assert "fr/order_rejected: template fr/order_rejected.html.j2 (customised), line 1: %BeginJob% on line 1 is never closed by %EndJob%" in out
    assert "1 problem(s) in the templates" in out


def test_the_worker_refuses_to_start_on_a_broken_template_before_connecting(room):
    override(room, "de/order_shipped.html.j2", '{% extends "de/_base.html.j2" %}{% block subject %}%Quantity%{% endblock %}')
    run = run_printroom("worker", cwd=room, PRINTROOM_TEMPORAL__ADDRESS=f"127.0.0.1:{free_port()}")
    assert run.returncode == 1
    assert "printroom worker: 1 problem(s) in the email templates" in run.stderr
    assert "de/order_shipped.html.j2 (customised), line 1: %Quantity% is a product (job) variable" in run.stderr
    assert "connect" not in run.stderr.lower()


def test_variables_lists_each_with_a_description_and_an_example(room):
    code, out, _ = templates(room, "variables", "order_accepted")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("%OrderNumber%") and "the order's id" in line and "(e.g. PO-1001)" in line for line in lines)
    assert any(line.startswith("%OrderLink%") and "https://shop.example.com/orders/PO-1001" in line for line in lines)
    assert any(line.strip().startswith("%Quantity%") and "inside the job block only" in line for line in lines)
    assert not any("%SmtpHost%" in line for line in lines)
    _, smtp_vars, _ = templates(room, "variables", "smtp_test")
    assert "%SmtpHost%" in smtp_vars and "%OrderNumber%" not in smtp_vars
    assert not any("%DraftId%" in line for line in lines)
    _, draft_vars, _ = templates(room, "variables", "draft_waiting")
    assert "%DraftId%" in draft_vars and "(e.g. d1)" in draft_vars and "%OrderNumber%" in draft_vars
    _, every, _ = templates(room, "variables")
    assert all(name in every for name in ("%DraftSubject%", "%SmtpHost%", "%OperatorNote%"))


def test_customize_copies_the_shipped_template_and_reset_brings_it_back(room):
    code, out, _ = templates(room, "customize", "order_shipped", "--lang", "fr")
    copy = room / "custom" / "fr" / "order_shipped.html.j2"
    assert code == 0 and str(Path("custom/fr/order_shipped.html.j2")) in out
    shipped = Path(__file__).parents[1] / "templates" / "fr" / "order_shipped.html.j2"
    shipped_text = shipped.read_text(encoding="utf-8")
    assert copy.read_text(encoding="utf-8") == shipped_text
    copy.write_text(copy.read_text(encoding="utf-8").replace("a été expédiée", "est partie"), encoding="utf-8")
    _, out, _ = templates(room, "preview", "order_shipped", "--lang", "fr", "--out", "fr.eml")
    assert "Subject: Votre commande PO-1001 est partie" in out and "(order_shipped template)" in out
    code, out, _ = templates(room, "reset", "order_shipped", "--lang", "fr")
    assert code == 0 and not copy.exists() and "the shipped template applies" in out
    _, out, _ = templates(room, "preview", "order_shipped", "--lang", "fr", "--out", "fr.eml")
    assert "Subject: Votre commande PO-1001 a été expédiée" in out
    assert shipped.read_text(encoding="utf-8") == shipped_text  # never edited in place


def test_reset_without_a_language_removes_every_customised_language(room):
    for lang in ("en", "de"):
        override(room, f"{lang}/order_accepted.html.j2", "x")
    code, out, _ = templates(room, "reset", "order_accepted")
    assert code == 0 and out.count("removed ") == 2
    assert not list((room / "custom").rglob("*.j2"))


def test_preview_writes_the_exact_message_with_the_sample_order_or_a_given_one(room):
    code, out, _ = templates(room, "preview", "order_accepted", "--lang", "de", "--out", "accepted.eml")
    assert code == 0
    parsed = message_from_bytes((room / "accepted.eml").read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Ihr Auftrag PO-1001 wurde angenommen" and parsed["Content-Language"] == "de"
    assert any(p.get_content_type() == "image/png" for p in parsed.walk())
    (room / "order.json").write_text('{"id": "PO-42", "customer": {"email": "x@example.org"}, "jobs": [{"id": "J9", "name": "Banner"}]}')
    code, out, _ = templates(room, "preview", "order_accepted", "--lang", "fr", "--order", "order.json", "--out", "p.html")
    html = (room / "p.html").read_text(encoding="utf-8")
    assert code == 0 and "Subject: Votre commande PO-42 a été acceptée" in out
    assert "Banner" in html and "data:image/png;base64," in html and "cid:" not in html


def test_preview_names_what_is_wrong_instead_of_writing_a_file(room):
    code, _, err = templates(room, "preview", "order_acepted", "--lang", "fr", "--out", "x.eml")
    assert code == 2 and "no email trigger 'order_acepted'" in err
    code, _, err = templates(room, "preview", "order_accepted", "--lang", "it", "--out", "x.eml")
    assert code == 2 and "language 'it' is not active" in err
    code, _, err = templates(room, "preview", "order_accepted", "--lang", "fr", "--out", "x.pdf")
    assert code == 2 and "argument --out: 'x.pdf': must end in .html" in err
    assert not (room / "x.eml").exists()


def test_customize_and_reset_refuse_what_they_cannot_do_and_say_why(room):
    code, _, err = templates(room, "reset", "order_shiped")
    assert code == 2 and "no template 'order_shiped'; templates: order_received, " in err
    assert templates(room, "customize", "order_shipped", "--lang", "fr")[0] == 0
    code, _, err = templates(room, "customize", "order_shipped", "--lang", "fr")
    assert code == 2 and "custom/fr/order_shipped.html.j2 exists already: edit it, or `printroom templates reset order_shipped --lang fr`" in err
    code, out, _ = templates(room, "reset", "order_accepted", "--lang", "de")
    assert code == 0 and "order_accepted: the shipped template applies (nothing was customised)" in out


def test_the_check_renders_every_shop_and_an_order_page_with_an_unknown_placeholder_is_a_settings_error(tmp_path):
    logo = tmp_path / "campus.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n")
    settings = Settings(
        templates={"override_dir": tmp_path / "custom"},
        shops={"default": {}, "campus": {"order_url": "https://campus.example/o/{order_id}", "images": {"logo": logo}}},
    )
    # Only the campus shop's emails take this branch, and no image "stamp" is configured.
    override(tmp_path, "en/order_shipped.html.j2", '{% extends "en/_base.html.j2" %}{% block subject %}x{% endblock %}'
             '{% block body %}{% if ShopName == "campus" %}<img src="cid:stamp">{% endif %}{% endblock %}')
    problems = [str(p) for p in check_templates(settings)]
    assert problems == [
        "en/order_shipped: template en/order_shipped.html.j2 shows cid:stamp, but no image 'stamp' is configured "
        "(templates.images.stamp in the settings) (shop campus)"
    ]
    with pytest.raises(SettingsError, match=r"shops.campus: Value error, order_url 'https://campus.example/\{order_id\}\?l=\{lang\}' has \{lang\}; only \{order_id\} is filled in"):
        load_settings(None, shops={"campus": {"order_url": "https://campus.example/{order_id}?l={lang}"}})
