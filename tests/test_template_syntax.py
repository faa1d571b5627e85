"""The %Name% template syntax on its own: what an administrator writes, what it becomes, what is refused."""

from __future__ import annotations

import pytest
from jinja2 import TemplateSyntaxError

from printroom.activities.rendering import TemplateRenderer
from printroom.activities.template_syntax import translate

ORDER = {"OrderNumber", "CustomerName", "Price"}
JOB = {"JobName", "Quantity"}


def jinja(source: str) -> str:
    return translate(source, order_names=ORDER, job_names=JOB, template="fr/order_accepted.html.j2")


def render(source: str, **values: object) -> str:
    renderer = TemplateRenderer()
    return renderer._env.from_string(source).render(values)


def test_a_variable_between_percent_signs_becomes_its_value():
    assert jinja("Commande %OrderNumber% pour %CustomerName%") == "Commande {{ OrderNumber }} pour {{ CustomerName }}"
    assert render("Commande %OrderNumber%", OrderNumber="PO-1") == "Commande PO-1"


@pytest.mark.parametrize(
    "text",
    [
        "100% recycled paper",
        "between 10% and 20%",
        "50%, then 25%.",
        "width: 100%; height: 50%",
        '<td width="100%">',
        "https://example.org/?q=a%20b%20c",
        '<a href="https://example.org/caf%C3%A9%E2%80%99s">',
        "{% if Price %}%{% endif %}",
    ],
)
def test_a_literal_percent_sign_stays_as_written(text):
    assert render(text, Price="1") == text.replace("{% if Price %}", "").replace("{% endif %}", "")


def test_two_percent_signs_write_one_where_a_word_follows():
    assert render("a 100%%OrderNumber% b") == "a 100%OrderNumber% b"
    assert render("%%") == "%"


def test_jinja_tags_are_left_alone_even_without_spaces():
    assert jinja("{%if Price%}%Price%{%endif%}") == "{%if Price%}{{ Price }}{%endif%}"
    assert jinja("{# %Nope% is a comment #}") == "{# %Nope% is a comment #}"


def test_an_unknown_variable_names_itself_its_line_and_a_likely_fix():
    with pytest.raises(TemplateSyntaxError) as error:
        jinja("line one\nline two %OrderNumbr%")
    assert error.value.lineno == 2
    assert error.value.name == "fr/order_accepted.html.j2"
    assert error.value.message.startswith("unknown variable %OrderNumbr%; did you mean %OrderNumber%?")


def test_the_job_block_repeats_for_each_job_with_the_jobs_own_values():
    source = "<ul>%BeginJob%<li>%JobName% x %Quantity%</li>%EndJob%</ul>"
    jobs = [{"JobName": "Flyers", "Quantity": "500"}, {"JobName": "<Posters>", "Quantity": "20"}]
    assert render(source, Jobs=jobs) == "<ul><li>Flyers x 500</li><li>&lt;Posters&gt; x 20</li></ul>"


def test_a_product_variable_outside_the_job_block_is_an_error_naming_it():
    with pytest.raises(TemplateSyntaxError) as error:
        jinja("%BeginJob%%JobName%%EndJob%\n%Quantity%")
    assert error.value.lineno == 2
    assert "%Quantity% is a product (job) variable: use it between %BeginJob% and %EndJob%" in error.value.message


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ("%BeginJob%\n%BeginJob%", "%BeginJob% inside the job block opened on line 1", 2),
        ("a\n%EndJob%", "%EndJob% without a %BeginJob% before it", 2),
        ("%BeginJob%\n%JobName%\n", "%BeginJob% on line 1 is never closed by %EndJob%", 3),
    ],
)
def test_a_job_block_that_does_not_open_and_close_once_is_an_error(source, message, line):
    with pytest.raises(TemplateSyntaxError) as error:
        jinja(source)
    assert message in error.value.message and error.value.lineno == line


def test_names_that_reach_python_internals_are_not_variables():
    # `%__class__%` is not a variable name: it stays text, and the sandbox refuses it in Jinja syntax.
    assert render("%__class__%") == "%__class__%"
