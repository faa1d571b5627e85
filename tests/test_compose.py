"""Composition on its own: settings + template + order -> the bytes of a MIME message. No network, no Temporal."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.compose import _message_id, message_id, run_tag, thread_references
from printroom.message_ids import parse_message_id
from printroom.activities.documents import DocumentStore
from printroom.activities.rendering import TemplateError, TemplateRenderer
from printroom.models import Audience, Order, StatusEmailRequest
from printroom.settings import Settings
from printroom.statemachines.emails import EMAIL_TRIGGERS
from printroom.worker.sample import SAMPLE_APPROVAL, SAMPLE_DRAFT, SAMPLE_SPENDING
from tests.conftest import sample_order

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)
# The smallest valid PNG: what a logo file holds, byte for byte.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "sender": {"address": "printroom@example.com", "name": "Salle d'impression"},
        "shops": {"default": {"order_url": "https://shop.example.com/orders/{order_id}"}},
        "templates": {"override_dir": tmp_path / "custom-templates"},
    }
    return Settings(**{**base, **changes})


def request(trigger: str = "order_accepted", **order_changes: Any) -> StatusEmailRequest:
    order = Order.model_validate(sample_order("PO-1001", **order_changes))
    return StatusEmailRequest(
        order=order, email_trigger=trigger, status="accepted", by="Léa", comment="Livraison jeudi", changed_at=NOW
    )


def assemble(
    settings: Settings, req: StatusEmailRequest, audience: Audience = "customer", to: list[str] | None = None
) -> AssembledEmail:
    assembler = EmailAssembler(settings, TemplateRenderer(settings.templates.override_dir), DocumentStore(settings.documents))
    return assembler.assemble(req, audience, to=to or ["marie@example.org"], cc=[], now=NOW)


def parse(email: AssembledEmail) -> EmailMessage:
    return message_from_bytes(email.data, policy=policy.default)  # type: ignore[return-value]


def text_of(parsed: EmailMessage) -> str:
    return parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def html_of(parsed: EmailMessage) -> str:
    return parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]


def customise(settings: Settings, file: str, source: str) -> None:
    path = settings.templates.override_dir / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def test_the_message_has_a_text_and_an_html_part_in_the_orders_language(settings):
    parsed = parse(assemble(settings, request()))
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Subject"] == "Votre commande PO-1001 a été acceptée"
    assert parsed["Content-Language"] == "fr"
    text = text_of(parsed)
    assert text.startswith("Bonjour Marie Curie,\n")  # the body, not the layout's banner
    assert text.endswith("\n-- \nSalle d'impression · Vous recevez ce message au sujet de la commande PO-1001.\n")
    assert "Livraison jeudi" in text
    assert "https://shop.example.com/orders/PO-1001" in text
    html = html_of(parsed)
    assert '<html lang="fr">' in html
    assert 'href="https://shop.example.com/orders/PO-1001"' in html


def test_prices_dates_and_quantities_are_written_as_each_language_writes_them(settings):
    req = request("order_shipped", jobs=[{"id": "J1", "name": "Flyers", "quantity": 1500}])
    french = text_of(parse(assemble(settings, req)))
    german = text_of(parse(assemble(settings, req.model_copy(update={"order": req.order.model_copy(update={"language": "de"})}))))
    english = text_of(parse(assemble(settings, req.model_copy(update={"order": req.order.model_copy(update={"language": "en"})}))))
    assert "expédiée le 28 novembre 2026" in french and re.search(r"240,00\s€", french) and re.search(r"1\s500", french)
    assert "am 28. November 2026 versandt" in german and re.search(r"240,00\s€", german) and "1.500" in german
    assert "shipped on November 28, 2026" in english and "€240.00" in english and "1,500" in english


def test_a_language_that_is_not_active_falls_back_to_the_shops_then_the_print_rooms(tmp_path):
    settings = make_settings(
        tmp_path,
        languages=["en", "fr", "de"],
        shops={"default": {"order_url": "https://s/{order_id}", "default_language": "de"}},
    )
    assert parse(assemble(settings, request(language="pt")))["Content-Language"] == "de"
    no_shop_language = make_settings(tmp_path, languages=["en", "fr"], default_language="en")
    assert parse(assemble(no_shop_language, request(language="de")))["Content-Language"] == "en"


def test_a_regional_language_is_written_in_its_base_language_when_only_that_is_active(settings):
    assert parse(assemble(settings, request(language="de-CH")))["Content-Language"] == "de"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{% extends "fr/_base.html.j2" %}{% block body %}x{% endblock %}', "no subject; write it in {% block subject %}"),
        ('{% extends "fr/_base.html.j2" %}{% block subject %} {% endblock %}', "the subject is empty"),
    ],
)
def test_a_template_without_a_subject_is_an_error_naming_it(settings, source, message):
    customise(settings, "fr/order_accepted.html.j2", source)
    with pytest.raises(TemplateError, match=re.escape(f"template fr/order_accepted.html.j2 (customised): {message}")):
        assemble(settings, request())


def test_a_template_missing_in_the_orders_language_falls_back_to_the_next_one(settings):
    customise(settings, "fr/.keep", "")  # an empty override directory changes nothing
    custom = settings.model_copy(update={"emails": type(settings.emails)(order_accepted={"template": "fancy"})})
    customise(settings, "en/fancy.html.j2", '{% extends "en/_base.html.j2" %}{% block subject %}Fancy %OrderNumber%{% endblock %}')
    parsed = parse(assemble(custom, request()))
    assert parsed["Subject"] == "Fancy PO-1001" and parsed["Content-Language"] == "en"


def test_css_is_inlined_so_mail_clients_that_drop_style_elements_keep_the_look(settings):
    html = html_of(parse(assemble(settings, request())))
    assert "<style" not in html
    button = re.search(r'<a class="button"[^>]*>', html)
    assert button and "background-color: #1e3a5f" in button.group() and "href=" in button.group()
    assert re.search(r'<td class="banner" style="[^"]*font-weight: bold', html)


def test_a_template_may_give_its_own_text_alternative(settings):
    customise(
        settings,
        "fr/order_accepted.html.j2",
        '{% extends "fr/_base.html.j2" %}{% block subject %}Acceptée{% endblock %}'
        "{% block body %}<p>HTML %OrderNumber%</p>{% endblock %}"
        "{% block text %}Texte brut pour %OrderNumber% & co{% endblock %}",
    )
    parsed = parse(assemble(settings, request()))
    assert text_of(parsed) == "Texte brut pour PO-1001 & co\n"
    assert "<p>HTML PO-1001</p>" in html_of(parsed)


def test_the_per_job_block_repeats_for_each_job(settings):
    jobs = [{"id": "J1", "name": "Flyers A5", "quantity": 500}, {"id": "J2", "name": "Posters <A2>", "product": "Poster"}]
    text = text_of(parse(assemble(settings, request(jobs=jobs))))
    assert re.search(r"Flyers A5\s+500", text) and re.search(r"Posters <A2>\s+Poster", text)
    html = html_of(parse(assemble(settings, request(jobs=jobs))))
    assert html.count("<tr><td") >= 3 and "Posters &lt;A2&gt;" in html


def test_the_order_link_is_url_safe_and_its_text_is_the_address(settings):
    customise(settings, "fr/order_accepted.html.j2", '{% extends "fr/_base.html.j2" %}{% block subject %}x{% endblock %}{% block body %}%OrderLink%{% endblock %}')
    html = html_of(parse(assemble(settings, request(id="PO-7#2&x"))))
    url = "https://shop.example.com/orders/PO-7%232%26x"
    assert f'<a href="{url}">{url}</a>' in html


def test_a_configured_logo_is_an_inline_part_that_the_html_shows(tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    settings = make_settings(tmp_path, templates={"override_dir": tmp_path / "t", "images": {"logo": logo}})
    parsed = parse(assemble(settings, request()))
    assert parsed.get_content_type() == "multipart/related"
    image = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
    assert image.get_payload(decode=True) == PNG
    assert image["Content-ID"] == "<logo@example.com>" and image.get_content_disposition() == "inline"
    assert 'src="cid:logo@example.com"' in html_of(parsed)


def test_without_a_logo_the_banner_shows_the_print_rooms_name_and_no_image_is_sent(settings):
    parsed = parse(assemble(settings, request()))
    assert not any(p.get_content_maintype() == "image" for p in parsed.walk())
    assert re.search(r"<td class=\"banner\"[^>]*>Salle d'impression</td>", html_of(parsed))


def test_an_image_the_template_shows_but_the_settings_do_not_name_is_an_error(settings):
    customise(settings, "fr/order_accepted.html.j2", '{% extends "fr/_base.html.j2" %}{% block subject %}x{% endblock %}{% block body %}<img src="cid:stamp">{% endblock %}')
    with pytest.raises(TemplateError, match=r"shows cid:stamp, but no image 'stamp' is configured \(templates.images.stamp"):
        assemble(settings, request())


def test_emails_of_one_order_form_one_thread_per_audience(settings):
    first = parse(assemble(settings, request("order_received")))
    later = parse(assemble(settings, request("order_shipped")))
    assert first["In-Reply-To"] is None and first["References"] is None
    assert later["In-Reply-To"] == first["Message-ID"] == "<PO-1001.order_received.1.customer@example.com>"
    assert later["References"] == first["Message-ID"]
    operators = parse(assemble(settings, request("order_cancelled"), "operators", ["ops@example.com"]))
    assert operators["References"] == "<PO-1001.order_received_operator.1.operators@example.com>"


def test_a_non_ascii_display_name_is_encoded_and_reads_back_intact(tmp_path):
    settings = make_settings(tmp_path, sender={"address": "printroom@example.com", "name": "Druckerei Müller"})
    email = assemble(settings, request())
    assert parse(email)["From"].addresses[0].display_name == "Druckerei Müller"
    assert email.data.isascii()  # every header encoded, every part quoted-printable: safe through any relay
    raw_from = next(line for line in email.data.split(b"\r\n") if line.startswith(b"From:"))
    assert raw_from == b"From: =?utf-8?q?Druckerei_M=C3=BCller?= <printroom@example.com>"


def test_a_long_subject_is_folded_and_reads_back_exactly(settings):
    long_name = "Établissement Marie Skłodowska-Curie " * 3
    req = request("order_received_operator", customer={"name": long_name, "email": "m@example.org"})
    email = assemble(settings, req, "operators")
    subject_lines = email.data.split(b"\r\n\r\n")[0].split(b"Subject:")[1].split(b"\r\n")
    assert all(len(line) <= 78 for line in subject_lines)
    assert parse(email)["Subject"] == f"Nouvelle commande PO-1001 de {' '.join(long_name.split())}"


def test_lines_end_with_crlf_and_the_date_is_the_one_given(settings):
    email = assemble(settings, request())
    assert b"\n" not in email.data.replace(b"\r\n", b"")
    assert parse(email)["Date"] == "Sat, 28 Nov 2026 09:30:00 +0000"


def test_order_data_is_escaped_in_html_and_kept_as_text_in_the_subject(settings):
    req = request("order_received_operator", customer={"name": "<script>x</script> & Co", "email": "m@example.org"})
    parsed = parse(assemble(settings, req, "operators"))
    html = html_of(parsed)
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt; &amp; Co" in html
    assert parsed["Subject"] == "Nouvelle commande PO-1001 de <script>x</script> & Co"


def test_a_line_break_in_order_data_cannot_add_a_header(settings):
    req = request("order_received_operator", customer={"name": "Eve\r\nBcc: victim@example.org", "email": "e@example.org"})
    parsed = parse(assemble(settings, req, "operators"))
    assert parsed["Bcc"] is None
    assert "\n" not in parsed["Subject"]


def test_the_message_id_is_the_same_for_the_same_occurrence_and_differs_otherwise():
    req = request()
    assert message_id(req, "customer", "example.com") == "<PO-1001.order_accepted.1.customer@example.com>"
    again = req.model_copy(update={"occurrence": 2})
    assert message_id(again, "customer", "example.com") != message_id(req, "customer", "example.com")
    assert message_id(req, "operators", "example.com") != message_id(req, "customer", "example.com")
    odd = request(id="A<B>@C")  # characters a Message-ID cannot hold are encoded, not dropped
    assert message_id(odd, "customer", "example.com") == "<A=3CB=3E=40C.order_accepted.1.customer@example.com>"


def test_an_order_started_again_under_the_same_id_has_message_ids_of_its_own_in_the_same_thread():
    first_run, second_run = (request("order_shipped").model_copy(update={"run": run}) for run in ("run-one", "run-two"))
    ids = {message_id(r, "customer", "bücher.example") for r in (first_run, second_run)}
    assert len(ids) == 2 and all(i.startswith("<PO-1001.order_shipped.1.customer.r") for i in ids)
    assert message_id(first_run, "customer", "bücher.example") == message_id(first_run.model_copy(), "customer", "bücher.example")
    # Both runs reply to one run-less root: a mail client shows every email of the order in one thread.
    roots = [thread_references(r, "customer", "bücher.example") for r in (first_run, second_run)]
    assert roots[0] == roots[1] == ["<PO-1001.order_received.1.customer@xn--bcher-kva.example>"]
    received = request("order_received").model_copy(update={"run": "run-two"})
    assert thread_references(received, "customer", "bücher.example") == roots[0]  # its own first email too


@pytest.mark.parametrize("language", ["en", "fr", "de"])
@pytest.mark.parametrize("trigger", EMAIL_TRIGGERS)
def test_every_trigger_has_a_template_in_english_french_and_german_that_renders(settings, trigger, language):
    req = request(trigger, language=language, budget={"limit": "200.00", "approvers": ["head@example.org"]})
    audience: Audience = "approvers" if trigger.startswith("approval") else "customer"
    if trigger == "draft_waiting":  # to operators, about a held draft
        req, audience = req.model_copy(update={"waiting_draft": SAMPLE_DRAFT}), "operators"
    if trigger.startswith("approval_"):  # sent by the approval, which says how long it has waited
        req = req.model_copy(update={"approval": SAMPLE_APPROVAL})
    if trigger == "budget_warning":  # about a cost centre, naming the order that crossed its threshold
        req = req.model_copy(update={"spending": SAMPLE_SPENDING})
    email = assemble(settings, req, audience)
    assert email.rendered.language == language and email.rendered.template == trigger
    assert ("marketing" if trigger == "budget_warning" else "PO-1001") in email.subject
    assert "  " not in email.subject and " ." not in email.rendered.text  # no variable left empty
    if trigger == "draft_waiting":
        assert "d1" in email.subject and SAMPLE_DRAFT.subject in email.rendered.text and SAMPLE_DRAFT.reason in email.rendered.text
    else:
        assert "Flyers A5" in email.rendered.text and "240,00" in email.rendered.text or "€240.00" in email.rendered.text
    assert "https://shop.example.com/orders/PO-1001" in email.rendered.html


def test_a_missing_template_is_an_error_naming_it_and_the_languages_tried(settings):
    custom = settings.model_copy(update={"emails": type(settings.emails)(order_accepted={"template": "order_lost"})})
    with pytest.raises(TemplateError, match=r"no template 'order_lost' in any of the languages \['fr', 'en'\]"):
        assemble(custom, request())


def test_an_unknown_variable_names_itself_the_template_the_language_and_the_line(settings):
    customise(settings, "de/order_accepted.html.j2", '{% extends "de/_base.html.j2" %}\n{% block subject %}Hallo\n%OrderNumbr%{% endblock %}')
    with pytest.raises(TemplateError) as error:
        assemble(settings, request(language="de"))
    assert str(error.value).startswith("template de/order_accepted.html.j2 (customised), line 3: unknown variable %OrderNumbr%; did you mean %OrderNumber%?")


def test_a_jinja_name_that_does_not_exist_is_an_error_not_an_empty_string(settings):
    customise(settings, "fr/order_accepted.html.j2", '{% extends "fr/_base.html.j2" %}\n\n{% block subject %}{{ OrderNumbr }}{% endblock %}')
    with pytest.raises(TemplateError, match=r"fr/order_accepted.html.j2 \(customised\), line 3: 'OrderNumbr' is undefined"):
        assemble(settings, request())


@pytest.mark.parametrize(
    "expression", ["{{ OrderNumber.__class__.__mro__ }}", "{{ ''.__class__.__subclasses__() }}", "{{ Jobs.pop() }}"]
)
def test_templates_cannot_reach_python_internals(settings, expression):
    customise(settings, "fr/order_accepted.html.j2", '{% extends "fr/_base.html.j2" %}{% block subject %}' + expression + "{% endblock %}")
    with pytest.raises(TemplateError, match="unsafe|__class__|not safely callable"):
        assemble(settings, request())


def test_a_renderer_keeps_the_templates_it_has_read_so_an_unchecked_edit_waits_for_a_restart(settings):
    renderer = TemplateRenderer(settings.templates.override_dir)  # the worker's, checked at its start
    assembler = EmailAssembler(settings, renderer, DocumentStore(settings.documents))
    before = assembler.assemble(request(), "customer", to=["marie@example.org"], cc=[], now=NOW)
    customise(settings, "fr/order_accepted.html.j2", '{% extends "fr/_base.html.j2" %}{% block subject %}Édité %Oops%{% endblock %}')
    running = assembler.assemble(request(), "customer", to=["marie@example.org"], cc=[], now=NOW)
    assert running.subject == before.subject == "Votre commande PO-1001 a été acceptée"
    with pytest.raises(TemplateError, match="unknown variable %Oops%"):  # what a restarted worker's check finds
        assemble(settings, request())


def test_dates_are_written_in_the_print_rooms_time_zone(tmp_path):
    late = request("order_shipped").model_copy(update={"changed_at": datetime(2026, 11, 28, 23, 30, tzinfo=timezone.utc)})
    assert "expédiée le 28 novembre 2026" in text_of(parse(assemble(make_settings(tmp_path), late)))
    paris = make_settings(tmp_path, timezone="Europe/Paris")
    assert "expédiée le 29 novembre 2026" in text_of(parse(assemble(paris, late)))


def test_an_image_file_with_a_non_ascii_name_keeps_it_and_the_message_stays_ascii(tmp_path):
    logo = tmp_path / "Logö.png"
    logo.write_bytes(PNG)
    settings = make_settings(tmp_path, templates={"override_dir": tmp_path / "t", "images": {"logo": logo}})
    email = assemble(settings, request())
    image = next(p for p in parse(email).walk() if p.get_content_type() == "image/png")
    assert image.get_filename() == "Logö.png" and email.data.isascii()


def test_a_long_international_sender_name_is_folded_into_short_encoded_words(settings):
    sender = settings.sender.model_copy(update={"name": "Druckerei Müller & Söhne – Offset, Digitaldruck und Weiterverarbeitung GmbH"})
    email = assemble(settings.model_copy(update={"sender": sender}), request())
    head = email.data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    # RFC 2047 6.2: the space between two encoded-words is not part of the name (Python's newer parser keeps it).
    raw = message_from_bytes(email.data)["From"]
    assert str(make_header(decode_header(raw))) == f"{sender.name} <printroom@example.com>"


@pytest.mark.parametrize(
    ("shop", "order_id", "audience", "recipient", "run"),
    [
        ("default", "PO-1001", "customer", None, "run-1"),
        ("default", "PO.2026.7", "customer", None, ""),  # dots in an order id are not escaped: read from the right
        ("Atelier.Nord", "Bestellung-Müller-注文", "approvers", "müller@bücher.example", "run-2"),
        ("default", "A<B>@C.1.customer", "operators", None, "run-3"),
    ],
)
def test_a_message_id_is_read_back_into_the_order_and_email_it_names(shop, order_id, audience, recipient, run):
    """A bounce quotes the Message-ID: it must lead back to the order, its run and its email, whatever the id holds."""
    built = _message_id(shop, order_id, "order_shipped", 2, audience, "bücher.example", recipient, run)
    parts = parse_message_id(built)
    assert parts is not None
    assert (parts.order_id, parts.shop, parts.email_trigger, parts.occurrence, parts.audience) == (order_id, shop, "order_shipped", 2, audience)
    assert parts.run_tag == (run_tag(run) if run else "")
    assert bool(parts.recipient_key) == (recipient is not None)


@pytest.mark.parametrize("foreign", ["<CAF=3Dx7@mail.gmail.com>", "<a.b.c.d@x>", "PO-1.order_shipped.1.customer@x", "<@x>", ""])
def test_a_message_id_printroom_never_made_names_no_order(foreign):
    assert parse_message_id(foreign) is None
