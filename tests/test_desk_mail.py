"""The desk's edits as pure functions: a text edit made simple HTML inside the layout, and a note merged into an
edited text, or refused where both change the same lines."""

from __future__ import annotations

import pytest

from printroom.web.desk_mail import EditRefused, html_from_text, merge_note

LAYOUT = (
    '<html><body><table><tr><td class="banner"><img src="cid:logo"></td></tr>'
    "<tr><td><!--text--><p>Old body</p><!--/text--></td></tr>"
    "<tr><td class=\"footer\"><!--text-->Print room · footer<!--/text--></td></tr></table></body></html>"
)
DRAFT = "Dear Marie,\n\nGood news: accepted.\n\nKind regards,\nPrint room\n"
NOTED = "Dear Marie,\n\nGood news: accepted.\n\nMessage from the print room:\nThursday\n\nKind regards,\nPrint room\n"


def test_a_text_edit_becomes_paragraphs_in_the_layout_its_header_logo_and_footer_kept_and_html_shown_as_text():
    html = html_from_text(LAYOUT, "Dear Marie,\n\nGreat <b>news</b>.\nSee you\n\n-- \nPrint room · footer\n")
    assert 'class="banner"><img src="cid:logo">' in html and "Print room · footer" in html and "Old body" not in html
    assert "<p>Dear Marie,</p>" in html and "<p>Great &lt;b&gt;news&lt;/b&gt;.<br>\nSee you</p>" in html
    assert html.count("<p>") == 2  # the footer after "-- " is the layout's, not a paragraph of the body
    linked = html_from_text(LAYOUT, 'See [your order](https://shop.example.com/o?a=1&b=2) or [this](javascript:alert(1))')
    assert '<a href="https://shop.example.com/o?a=1&amp;b=2">your order</a>' in linked and "<a href=\"javascript" not in linked
    bare = html_from_text("<p>an operator's own HTML</p>", "Hello")
    assert "<p>Hello</p>" in bare and "own HTML" not in bare


def test_a_note_is_merged_into_an_edited_text_where_the_template_puts_it():
    edited = DRAFT.replace("Good news", "Great news")
    assert merge_note(DRAFT, edited, NOTED) == NOTED.replace("Good news", "Great news")
    assert merge_note(DRAFT, DRAFT, NOTED) == NOTED  # nothing edited: the note alone
    signed = edited.replace("Print room\n", "Print room\nLéa\n")
    assert merge_note(DRAFT, signed, NOTED).endswith("Kind regards,\nPrint room\nLéa\n")


def test_a_note_where_the_operator_rewrote_the_lines_is_refused_with_what_to_do():
    rewritten = "Dear Marie,\n\nGood news: accepted.\nDelivery on Friday.\n"  # the lines the note goes between, rewritten
    with pytest.raises(EditRefused, match="write the note into the text instead"):
        merge_note(DRAFT, rewritten, NOTED)
