"""Composition on its own: template + order -> the bytes of a MIME message. No network."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.headerregistry import Address

import pytest

from activities.compose import build_message, message_id, template_variables
from activities.rendering import TemplateError, TemplateRenderer
from printroom.models import Order, StatusEmailRequest
from statemachines.order import EMAIL_TRIGGERS
from tests.conftest import sample_order

RENDERER = TemplateRenderer()


def request(trigger: str = "order_accepted", **order_changes) -> StatusEmailRequest:
    order = Order.model_validate(sample_order("PO-1001", **order_changes))
    return StatusEmailRequest(order=order, email_trigger=trigger, status="accepted", by="Léa", comment="Livraison jeudi")


def raw(req: StatusEmailRequest, languages=("fr", "en"), sender_name="Salle d'impression") -> bytes:
    variables = template_variables(req, "customer", print_room_name=sender_name, order_url="https://shop/o/PO-1001")
    rendered = RENDERER.render(req.email_trigger, languages, variables)
    return build_message(
        rendered,
        sender=Address(sender_name, addr_spec="printroom@example.com"),
        to=["marie@example.org"],
        message_id=message_id(req, "customer", "example.com"),
        date=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc),
    )


def compose(req: StatusEmailRequest, languages=("fr", "en"), sender_name="Salle d'impression"):
    return message_from_bytes(raw(req, languages, sender_name), policy=policy.default)


def test_the_message_has_a_text_and_an_html_part_in_the_orders_language():
    parsed = compose(request())
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Subject"] == "Votre commande PO-1001 a été acceptée"
    assert parsed["Content-Language"] == "fr"
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")  # CRLF on the wire
    assert text.startswith("Bonjour Marie Curie,\n")  # the body, not the layout's banner
    assert text.endswith("\n-- \nSalle d'impression · Vous recevez ce message au sujet de la commande PO-1001.\n")
    assert "Livraison jeudi" in text
    assert "https://shop/o/PO-1001" in text
    html = parsed.get_body(("html",)).get_content()
    assert '<html lang="fr">' in html
    assert '<a href="https://shop/o/PO-1001"' in html


def test_a_language_without_templates_falls_back_to_the_next_one():
    parsed = compose(request(language="pt"), languages=("pt", "en"))
    assert parsed["Subject"] == "Your order PO-1001 has been accepted"
    assert parsed["Content-Language"] == "en"


def test_a_non_ascii_display_name_is_encoded_and_reads_back_intact():
    parsed = compose(request(), sender_name="Druckerei Müller")
    assert parsed["From"].addresses[0].display_name == "Druckerei Müller"
    data = raw(request(), sender_name="Druckerei Müller")
    assert data.isascii()  # every header encoded, every part quoted-printable: safe through any relay
    raw_from = next(line for line in data.split(b"\r\n") if line.startswith(b"From:"))
    assert raw_from == b"From: =?utf-8?q?Druckerei_M=C3=BCller?= <printroom@example.com>"


def test_a_long_subject_is_folded_and_reads_back_exactly():
    req = request("order_received_operator", customer={"name": "Établissement Marie Skłodowska-Curie " * 3, "email": "m@example.org"})
    data = raw(req)
    subject_lines = data.split(b"\r\n\r\n")[0].split(b"Subject:")[1].split(b"\r\n")
    assert all(len(line) <= 78 for line in subject_lines)
    name = " ".join(("Établissement Marie Skłodowska-Curie " * 3).split())
    assert compose(req)["Subject"] == f"Nouvelle commande PO-1001 de {name}"


def test_lines_end_with_crlf_and_the_date_is_the_one_given():
    data = raw(request())
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert compose(request())["Date"] == "Sat, 28 Nov 2026 09:30:00 +0000"


def test_order_data_is_escaped_in_html_and_kept_as_text_in_the_subject():
    req = request("order_received_operator", customer={"name": "<script>x</script> & Co", "email": "m@example.org"})
    parsed = compose(req)
    html = parsed.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt; &amp; Co" in html
    assert parsed["Subject"] == "Nouvelle commande PO-1001 de <script>x</script> & Co"


def test_a_line_break_in_order_data_cannot_add_a_header():
    req = request("order_received_operator", customer={"name": "Eve\r\nBcc: victim@example.org", "email": "e@example.org"})
    parsed = compose(req)
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


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("trigger", EMAIL_TRIGGERS)
def test_every_trigger_has_a_template_in_english_and_french_that_renders(trigger, language):
    req = request(trigger, budget={"limit": "200.00", "approvers": ["head@example.org"]})
    variables = template_variables(req, "customer", print_room_name="Print Room", order_url="https://shop/o/PO-1001")
    rendered = RENDERER.render(trigger, [language], variables)
    assert rendered.language == language
    assert "PO-1001" in rendered.subject
    assert "Flyers A5" in rendered.text
    assert "https://shop/o/PO-1001" in rendered.html


def test_a_missing_template_is_an_error_naming_it_and_the_languages_tried():
    with pytest.raises(TemplateError, match="no template 'order_lost' in any of the languages \\['de', 'en'\\]"):
        RENDERER.render("order_lost", ["de", "en"], {})


def test_an_unknown_variable_is_an_error_not_an_empty_string(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "broken.html.j2").write_text("{% block subject %}Hi {{ OrderNumbr }}{% endblock %}")
    with pytest.raises(TemplateError, match="'OrderNumbr' is undefined"):
        TemplateRenderer(tmp_path).render("broken", ["en"], {"OrderNumber": "PO-1"})


def test_templates_cannot_reach_python_internals(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "evil.html.j2").write_text("{% block subject %}{{ OrderNumber.__class__.__mro__ }}{% endblock %}")
    with pytest.raises(TemplateError, match="unsafe|__class__"):
        TemplateRenderer(tmp_path).render("evil", ["en"], {"OrderNumber": "PO-1"})
