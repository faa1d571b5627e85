"""An operator's day on the desk in a real browser (Debian's Chromium): from the draft_waiting email as it arrived,
to the list, to the draft, a note and a changed sentence, a preview, a send; the email arrives once with both. A
second operator's send is refused with who sent it; a discard with a reason; a Cc change the settings forbid is
refused on the page. The same pages in French and German. With PRINTROOM_SCREENSHOTS=DIR, each page is saved
there as PNG for the README (`make screenshots`)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect
from temporalio.client import Client, WorkflowHandle

from printroom.cli.capture import CapturedMessage
from printroom.models import Draft
from printroom.settings import Settings
from printroom.worker.main import build_worker
from tests.conftest import eventually, messages_to, order_state
from tests.desk_helpers import desk_settings, desk_url, order_with_draft
from tests.test_web_ui import browser, page  # noqa: F401  # the Chromium fixtures
from tests.web_helpers import web_running

MARIE = "marie@example.org"
OPERATORS = "ops@example.com"
SHOTS = os.environ.get("PRINTROOM_SCREENSHOTS")


def reminding_soon(settings: Settings, task_queue: str, **drafts: Any) -> Settings:
    """draft_waiting 2 s after a draft is held: the setting's floor is a minute, the timer is the workflow's own."""
    web = desk_settings(settings, task_queue, **drafts)
    return web.model_copy(update={"drafts": web.drafts.model_copy(update={"remind_after": timedelta(seconds=2)})})


@asynccontextmanager
async def a_held_draft(client: Client, web: Settings, task_queue: str, language: str) -> AsyncIterator[tuple[str, WorkflowHandle[Any, Any], dict[str, Any], Draft]]:
    """A worker and `printroom web` on `web`'s settings, an order in `language` with its order_accepted held;
    the order is cancelled afterwards."""
    async with build_worker(client, web, task_queue=task_queue), web_running(web, client) as base:
        handle, order, draft = await order_with_draft(client, task_queue, language=language)
        yield base, handle, order, draft
        await handle.signal("change_status", {"trigger": "cancel"})


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def press(button: Locator) -> None:
    """Scrolled to first: headless Chromium routes a click that scrolls past a sandboxed frame into the frame."""
    await button.scroll_into_view_if_needed()
    await button.click()


# The desk's title, a column's name, a draft's link and its editor's title, as each language writes them.
DESK_WORDS = {
    "fr": ("E-mails en attente", "Retenu parce que", "Ouvrir le brouillon {draft} de la commande {order}", "Brouillon {draft} de la commande {order}"),
    "de": ("Wartende E-Mails", "Zurückgehalten, weil", "Entwurf {draft} von Auftrag {order} öffnen", "Entwurf {draft} von Auftrag {order}"),
}


async def from_the_desk(page: Page, base: str, lang: str, draft: str, order: str) -> None:
    """The desk in the link's language, then the draft's link on it, to its editor."""
    title, column, link, editor = DESK_WORDS[lang]
    await page.goto(desk_url(base, lang))
    await expect(page.get_by_role("heading", name=title)).to_be_visible()
    await expect(page.get_by_role("columnheader", name=column)).to_be_visible()
    await page.get_by_role("link", name=link.format(draft=draft, order=order)).click()
    await expect(page.get_by_role("heading", name=editor.format(draft=draft, order=order))).to_be_visible()


def readme_actions() -> int:
    """The number of actions the README states for the path from the draft_waiting email to a sent, edited email."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    stated = re.search(r"From the `draft_waiting` email to a sent, edited email: \*\*(\d+) actions\*\*", readme)
    assert stated is not None, "the README's sentence on the number of actions"
    return int(stated.group(1))


def arrived(smtp: Any, draft: Draft) -> list[CapturedMessage]:
    return [m for m in messages_to(smtp, MARIE) if m.parsed()["Message-ID"].strip() == draft.message_id]


async def test_from_draft_waiting_to_a_sent_edited_email_in_five_actions(client: Client, settings, smtp, task_queue, page: Page, browser: Browser):  # noqa: F811
    """The README's count: five actions of the operator's (counted by `act`), the name remembered from an earlier
    visit to the desk, where the operator sent another order's draft."""
    async with a_held_draft(client, reminding_soon(settings, task_queue), task_queue, "en") as (base, handle, order, draft):
        earlier, earlier_order, earlier_draft = await order_with_draft(client, task_queue, language="en")
        waiting = await eventually(
            lambda: [m for m in messages_to(smtp, OPERATORS) if order["id"] in m.parsed()["Subject"] and "waiting" in m.parsed()["Subject"]],
            what="draft_waiting to the operators",
        )
        email_html = waiting[0].parsed().get_body(("html",)).get_content()
        second = await (await browser.new_context()).new_page()  # another operator, who opened the draft from the email
        await second.set_content(email_html)
        await second.get_by_role("link", name=f"Open draft {draft.id}").click()
        await expect(second.get_by_role("heading", name=f"Draft {draft.id} of order {order['id']}")).to_be_visible()

        # An earlier visit: the desk's link of the email, the list, another order's draft sent as it is, by Léa.
        await page.set_content(email_html)
        await page.get_by_role("link", name="Open the operators' desk").click()
        await expect(page.get_by_role("heading", name="Emails waiting for you")).to_be_visible()
        await expect(page.get_by_role("cell", name=order["id"], exact=True)).to_be_visible()
        await shot(page, "1-desk")
        await page.get_by_role("link", name=f"Open draft {earlier_draft.id} of order {earlier_order['id']}").click()
        await page.get_by_label("Your name").fill("Léa")
        await press(page.get_by_role("button", name="Send", exact=True))
        await expect(page.get_by_role("heading", name=f"Draft {earlier_draft.id} of order {earlier_order['id']} is sent")).to_be_visible()

        actions = 0

        async def act(done: Awaitable[None]) -> None:
            nonlocal actions
            actions += 1
            await done

        # The operator's path, from the draft_waiting email to the sent, edited email.
        await page.set_content(email_html)
        await act(page.get_by_role("link", name=f"Open draft {draft.id}").click())  # 1. the draft's link in the email
        await expect(page.get_by_role("heading", name=f"Draft {draft.id} of order {order['id']}")).to_be_visible()
        await expect(page.frame_locator("iframe.email").get_by_text("Good news")).to_be_visible()
        await expect(page.get_by_label("Your name")).to_have_value("Léa")  # remembered: not typed again
        await shot(page, "2-draft")
        await act(page.get_by_label("Note to the customer").fill("Delivery on Thursday, <b>before noon</b>"))  # 2. a note
        text = page.get_by_label("Text of the email")
        await act(text.fill((await text.input_value()).replace("Good news", "Great news")))  # 3. a sentence changed
        await act(press(page.get_by_role("button", name="Preview")))  # 4. as it will be sent, nothing sent
        await expect(page.get_by_role("heading", name="Preview: the email exactly as it will be sent")).to_be_visible()
        frame = page.frame_locator("iframe.email")
        await expect(frame.get_by_text("Great news")).to_be_visible()
        await expect(frame.get_by_text("Delivery on Thursday, <b>before noon</b>")).to_be_visible()  # HTML shown as text
        await shot(page, "3-preview")
        assert not arrived(smtp, draft)
        await act(press(page.get_by_role("button", name="Send", exact=True)))  # 5. sent
        await expect(page.get_by_role("heading", name=f"Draft {draft.id} of order {order['id']} is sent")).to_be_visible()
        await expect(page.get_by_text(draft.message_id)).to_be_visible()
        await shot(page, "4-sent")
        assert actions == readme_actions() == 5  # five, as the README says

        email = (await eventually(lambda: arrived(smtp, draft), what="the edited email"))[0].parsed()
        body = email.get_body(("plain",)).get_content()
        assert "Great news" in body and "Delivery on Thursday, <b>before noon</b>" in body and "Good news" not in body
        html = email.get_body(("html",)).get_content()
        assert "Great news" in html and "Delivery on Thursday, &lt;b&gt;before noon&lt;/b&gt;" in html
        state = await order_state(handle)
        assert not state.drafts_pending and state.changes[-1].by == "Léa"
        described = await handle.describe()
        assert described.search_attributes.get("DraftsPending") == [0]
        await page.goto(desk_url(base))
        await expect(page.get_by_role("cell", name=order["id"], exact=True)).to_have_count(0)

        # The second operator sends the same draft: told who sent it when, and nothing more goes out.
        await press(second.get_by_role("button", name="Send", exact=True))
        await expect(second.get_by_text(re.compile(rf"{draft.id} was sent at .+ by Léa\. Nothing more was sent\."))).to_be_visible()
        assert len(arrived(smtp, draft)) == 1
        await second.context.close()
        await earlier.signal("change_status", {"trigger": "cancel"})


async def test_a_forbidden_cc_is_refused_on_the_page_and_a_discard_takes_a_reason_in_french(client: Client, settings, smtp, task_queue, page: Page):  # noqa: F811
    async with a_held_draft(client, desk_settings(settings, task_queue), task_queue, "fr") as (base, handle, order, draft):
        await from_the_desk(page, base, "fr", draft.id, order["id"])
        await expect(page.get_by_label("Cc (adresses séparées par des virgules)")).to_have_count(0)  # not allowed here

        # A page from before the settings changed still offers Cc: the order refuses it, the page says why.
        await page.evaluate(
            """() => { const cc = document.createElement('input'); cc.name = 'cc'; cc.value = 'boss@example.org';
                       document.querySelector('form').appendChild(cc); }"""
        )
        await press(page.get_by_role("button", name="Envoyer", exact=True))
        await expect(page.get_by_role("alert")).to_contain_text("les opérateurs ne peuvent pas modifier le Cc de d1")  # in the page's language
        await expect(page.get_by_role("alert")).to_contain_text("rien n'a été envoyé")
        assert not arrived(smtp, draft) and (await order_state(handle)).drafts_pending

        await press(page.get_by_role("button", name="Abandonner"))
        await expect(page.get_by_role("alert")).to_have_text(re.compile("Indiquez pourquoi le brouillon est abandonné"))
        await page.get_by_label("Raison de l'abandon").fill("Client prévenu par téléphone")
        await page.get_by_label("Votre nom").fill("Léa")
        await press(page.get_by_role("button", name="Abandonner"))
        await expect(page.get_by_role("heading", name=f"Le brouillon {draft.id} de la commande {order['id']} est abandonné")).to_be_visible()
        state = await order_state(handle)
        assert not state.drafts_pending and state.changes[-1].trigger == "discard_draft" and state.changes[-1].by == "Léa"
        assert "Client prévenu par téléphone" in state.changes[-1].comment and not arrived(smtp, draft)


async def test_the_desk_and_the_editor_in_german(client: Client, settings, smtp, task_queue, page: Page):  # noqa: F811
    async with a_held_draft(client, desk_settings(settings, task_queue), task_queue, "de") as (base, handle, order, draft):
        await from_the_desk(page, base, "de", draft.id, order["id"])
        await page.get_by_label("Hinweis an den Kunden").fill("Lieferung am Donnerstag")
        await press(page.get_by_role("button", name="Vorschau"))
        await expect(page.get_by_role("heading", name="Vorschau: die E-Mail genau so, wie sie gesendet wird")).to_be_visible()
        await expect(page.frame_locator("iframe.email").get_by_text("Lieferung am Donnerstag")).to_be_visible()
        await page.get_by_label("Ihr Name").fill("Jonas")
        await press(page.get_by_role("button", name="Senden", exact=True))
        await expect(page.get_by_role("heading", name=f"Entwurf {draft.id} von Auftrag {order['id']} ist gesendet")).to_be_visible()
        email = (await eventually(lambda: arrived(smtp, draft), what="the German email"))[0].parsed()
        assert "Lieferung am Donnerstag" in email.get_body(("plain",)).get_content()
