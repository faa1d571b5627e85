"""Hostile input, property-based (hypothesis): whatever arrives as an order, a signal or update payload, a settings
file, a template, an approval form or a link, the answer is a refusal naming what was wrong, never another
exception (which, inside a workflow, would fail its task for ever), and no order field can write an email header."""

from __future__ import annotations

import asyncio
import copy
import re
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from printroom.activities.assemble import EmailAssembler
from printroom.activities.documents import AttachmentError, DocumentStore
from printroom.activities.rendering import TemplateError, TemplateRenderer
from printroom.links import LinkError, LinkSigner
from printroom.models import (
    ApprovalDecision,
    AskAgain,
    ChangeStatus,
    Decide,
    DiscardDraft,
    HeldDrafts,
    Order,
    SendDraft,
    Spending,
    SpendingRecord,
    StatusEmailRequest,
    validation_problems,
)
from printroom.settings import Settings, SettingsError, resolve_settings
from printroom.web.forms import FormRefused, read_form
from tests.conftest import sample_order

# JSON as a sender can make it: any nesting of the JSON types, text in any script (no lone surrogates: JSON on
# the wire is UTF-8), numbers past every limit.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
HOSTILE_TEXT = st.one_of(
    TEXT,
    st.sampled_from(["", " ", "\r\n", "a\r\nBcc: evil@example.net", "=?utf-8?q?x?=", "\x00", "{{ 7*7 }}", "%Price%", "../../etc/passwd", "ü" * 300]),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
PAYLOAD_MODELS: list[type[BaseModel]] = [
    Order, ChangeStatus, ApprovalDecision, AskAgain, Decide, SendDraft, DiscardDraft, HeldDrafts, SpendingRecord,
]
FAST = hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused_or_valid(model: type[BaseModel], payload: Any) -> BaseModel | None:
    """What the workflows do with a payload: the model, or a refusal naming each bad field. Anything else raised
    here would fail a workflow task for ever."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = validation_problems(error)
        assert problems and all(": " in problem for problem in problems)
        return None


@pytest.mark.parametrize("model", PAYLOAD_MODELS, ids=lambda m: m.__name__)
@FAST
@given(payload=JSON)
def test_any_json_payload_is_taken_or_refused_with_its_fields_named(model: type[BaseModel], payload: Any):
    refused_or_valid(model, payload)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


SAMPLE = sample_order(
    "PO-1", budget={"limit": "200.00", "approvers": ["chefin@bücher.example"]}, cost_centre="marketing",
    due_date="2026-12-24", ordered_at="2026-11-28T09:00:00Z",
)  # fmt: skip
RENDERER = TemplateRenderer(None)


@FAST
@given(where=st.sampled_from(_leaves(SAMPLE)), value=st.one_of(JSON, HOSTILE_TEXT))
def test_an_order_with_any_field_changed_is_refused_or_makes_an_email_whose_headers_it_cannot_write(where, value):
    order = copy.deepcopy(SAMPLE)
    target = order
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    valid = refused_or_valid(Order, order)
    if valid is None:
        return
    assert isinstance(valid, Order)
    settings = Settings(shops={"default": {"order_url": "https://shop.example.com/orders/{order_id}"}})
    assembler = EmailAssembler(settings, RENDERER, DocumentStore(settings.documents))
    request = StatusEmailRequest(order=valid, email_trigger="order_accepted", status="accepted", by="Léa\r\nX-Evil: 1", comment=str(value)[:200])
    try:
        email = assembler.assemble(request, "customer", to=[str(valid.customer.email)], cc=[], now=SAMPLE_NOW)
    except (TemplateError, AttachmentError):
        return  # refused with a reason the operators see; never a crash
    message = message_from_bytes(email.data, policy=policy.default)
    assert set(message.keys()) <= EXPECTED_HEADERS, f"unexpected headers {set(message.keys()) - EXPECTED_HEADERS}"
    assert "\n" not in str(message["Subject"]) and len(message.get_all("To")) == 1 and message["Bcc"] is None


SAMPLE_NOW = __import__("datetime").datetime(2026, 11, 29, 9, 0, tzinfo=__import__("datetime").timezone.utc)
EXPECTED_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Language", "References",
    "In-Reply-To", "Auto-Submitted", "X-Auto-Response-Suppress", "Content-Transfer-Encoding",
}  # fmt: skip


SECTIONS = ["sender", "operators", "languages", "default_language", "timezone", "smtp", "temporal", "shops", "emails",
            "templates", "documents", "drafts", "budget", "cost_centres", "web", "deliveries", "dev", "nonsense"]  # fmt: skip


@FAST
@given(data=st.dictionaries(st.sampled_from(SECTIONS), JSON, max_size=4))
@example(data={"sender": {"\n": None}})  # found here once: a key that is a line break, quoted in the error
def test_any_settings_file_loads_or_is_refused_naming_the_fields(data: dict[str, Any]):
    try:
        resolve_settings(data)
    except SettingsError as error:
        assert re.match(r"invalid settings \([^)]+\):( |\n  )\S.*: \S", str(error)), str(error)  # a field named


@FAST
@given(source=st.one_of(TEXT, st.sampled_from([
    "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{% for x in range(10**9) %}{% endfor %}", "%Nope%", "%BeginJob%",
    "%EndJob%", "{{ Price|attr('__globals__') }}", "{% block subject %}{{ cycler.__init__.__globals__ }}{% endblock %}",
    "{% block subject %}%Price% %%{% endblock %}{% block body %}%BeginJob%%JobName%%EndJob%{% endblock %}",
])))
def test_any_template_renders_or_is_refused_with_a_template_error(tmp_path_factory, source: str):
    folder = tmp_path_factory.mktemp("custom") / "fr"  # the sample order is in French
    folder.mkdir()
    # In the body block: a child template's text outside its blocks is never rendered.
    template = '{% extends "fr/_base.html.j2" %}{% block subject %}Commande %OrderNumber%{% endblock %}{% block body %}'
    (folder / "order_accepted.html.j2").write_text(template + source + "{% endblock %}", encoding="utf-8")
    settings = Settings(templates={"override_dir": folder.parent})
    assembler = EmailAssembler(settings, TemplateRenderer(folder.parent), DocumentStore(settings.documents))
    request = StatusEmailRequest(order=Order.model_validate(SAMPLE), email_trigger="order_accepted", status="accepted")
    try:
        email = assembler.assemble(request, "customer", to=["marie@example.org"], cc=[], now=SAMPLE_NOW)
    except TemplateError as error:
        assert str(error)
        return
    assert "<class " not in email.rendered.html and "__globals__" not in email.rendered.html  # nothing escaped the sandbox


def form_request(body: bytes, content_type: bytes = b"application/x-www-form-urlencoded") -> Request:
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type)]}
    return Request(scope, receive)


@FAST
@given(body=st.one_of(st.binary(max_size=3000), st.builds(lambda t: t.encode("utf-8"), TEXT)))
def test_any_form_body_is_read_as_text_fields_or_refused(body: bytes):
    try:
        form = asyncio.run(read_form(form_request(body), 2048))
    except FormRefused as refused:
        assert refused.status in (400, 413) and str(refused)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.items())


SIGNER = LinkSigner(b"s" * 32)


@FAST
@given(token=st.one_of(TEXT, st.builds(lambda t, s: t + "." + s, TEXT, TEXT)))
def test_any_token_is_read_or_refused_as_a_link_error(token: str):
    from datetime import datetime, timezone

    for read in (SIGNER.read_approval, SIGNER.read_draft):
        with pytest.raises(LinkError):
            read(token, datetime.now(timezone.utc))


@FAST
@given(
    prices=st.lists(st.decimals(min_value=0, max_value=Decimal("1e12"), allow_nan=False, places=2), max_size=50),
    budget=st.decimals(min_value=Decimal("1e-30"), max_value=Decimal("1e15"), allow_nan=False),
)
def test_a_cost_centre_shows_its_share_of_any_budget_without_failing(prices: list[Decimal], budget: Decimal):
    """Every accepted price summed over a period, against any budget the settings take: the percentage the
    cost centre shows (current details, warning email) is a number, never an exception that would fail its
    workflow task for ever."""
    orders = [Order.model_validate({**SAMPLE, "price": {"amount": str(p), "currency": "EUR"}}) for p in prices]
    spent = sum((o.price.amount for o in orders if o.price), Decimal(0))
    percent = Spending(cost_centre="lab", period="2026-11", spent=spent, budget=budget, currency="EUR", warn_at_percent=80).percent
    assert percent.is_finite() and percent >= 0
    assert refused_or_valid(Order, {**SAMPLE, "price": {"amount": "1000000000000.01"}}) is None


def test_the_properties_meet_what_they_must_refuse(tmp_path: Path):
    """A property that never meets bad input proves nothing: the cases each one exists for, written out."""
    assert refused_or_valid(ChangeStatus, {"trigger": 5}) is None
    with pytest.raises(FormRefused):
        asyncio.run(read_form(form_request(b"comment=caf\xe9"), 2048))
    folder = tmp_path / "fr"
    folder.mkdir()
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    base = '{% extends "fr/_base.html.j2" %}{% block subject %}x{% endblock %}{% block body %}'
    (folder / "order_accepted.html.j2").write_text(base + escape + "{% endblock %}", encoding="utf-8")
    settings = Settings(templates={"override_dir": tmp_path})
    assembler = EmailAssembler(settings, TemplateRenderer(tmp_path), DocumentStore(settings.documents))
    request = StatusEmailRequest(order=Order.model_validate(SAMPLE), email_trigger="order_accepted", status="accepted")
    with pytest.raises(TemplateError):
        assembler.assemble(request, "customer", to=["marie@example.org"], cc=[], now=SAMPLE_NOW)
    named = {**SAMPLE, "customer": {**SAMPLE["customer"], "name": "Eve\r\nBcc: evil@example.net"}}
    email = EmailAssembler(Settings(), RENDERER, DocumentStore(Settings().documents)).assemble(
        StatusEmailRequest(order=Order.model_validate(named), email_trigger="order_accepted", status="accepted"),
        "customer", to=["marie@example.org"], cc=[], now=SAMPLE_NOW,
    )  # fmt: skip
    assert message_from_bytes(email.data, policy=policy.default)["Bcc"] is None
