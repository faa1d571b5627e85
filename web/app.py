"""The ASGI app of `printroom web`: an approver's answer page (GET shows, POST decides) and an operator's
read-only draft preview. It holds no state: the signed link says who and what, Temporal says the rest."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from printroom.links import ApprovalLink, LinkError, LinkSigner
from printroom.models import ApprovalOutcome, ApprovalState, Decide, Draft, order_workflow_id
from printroom.settings import Settings
from printroom.web.codec import CodecServer
from printroom.web.desk import Desk
from printroom.web.forms import MAX_COMMENT, FormRefused, read_form
from printroom.web.notices import Notices
from printroom.web.pages import Pages, draft_body, stylesheet
from printroom.web.temporal import NoAnswer, NotWaiting, Refused, TemporalPages, Unreachable
from printroom.web.text import DECISION_WORDS, TEXT, language_of
from printroom.approvers import same_address

Clock = Callable[[], datetime]
log = logging.getLogger("printroom.web")
# The approval's status once a link's decision is taken.
DECIDED = {"approve": "approved", "reject": "rejected"}


def build_app(
    settings: Settings, signer: LinkSigner, temporal: TemporalPages, clock: Clock = lambda: datetime.now(timezone.utc),
    *, codec: CodecServer | None = None,
) -> Starlette:
    site = Site(settings, signer, temporal, clock)
    return Starlette(
        routes=[
            *(codec or CodecServer(settings)).routes(),  # Temporal's codec server protocol, for the Web UI and CLI
            Route("/page.css", lambda _: stylesheet()),
            Route("/{lang}/approvals/{token}", site.approval, methods=["GET", "POST"]),
            Route("/{lang}/approvals", site.no_token, methods=["GET", "POST"]),
            Route("/{lang}/approvals/", site.no_token, methods=["GET", "POST"]),
            Route("/drafts/{token}", site.draft),
            Route("/drafts/{token}/body", site.draft_html),
            *Desk(site).routes(),  # the operators' desk and each draft's editor
        ],
        exception_handlers={404: site.not_found, 405: site.not_found, Exception: site.broken},
    )


class Site:
    def __init__(self, settings: Settings, signer: LinkSigner, temporal: TemporalPages, clock: Clock) -> None:
        self.settings, self.signer, self.temporal, self.clock = settings, signer, temporal, clock
        self.pages = Pages(settings.timezone)
        self.max_form = settings.web.max_form_kb * 1024
        self.notices = Notices()

    # Approvals.

    async def approval(self, request: Request) -> Response:
        lang = language_of(request.path_params["lang"])
        t = TEXT[lang]
        try:
            link = self.signer.read_approval(request.path_params["token"], self.clock())
        except LinkError as error:
            return self._forbidden(lang, error)
        gone = (t["no_approval_title"], t["no_approval"].format(order=link.order_id))
        if request.method == "GET":
            return await self._guarded(lang, lambda: self._ask(request, lang, link), gone)
        try:
            form = await read_form(request, self.max_form)
        except FormRefused as refused:
            return self.pages.message(lang, refused.status, t["bad_form_title"], t[refused.words].format(**refused.values))
        if form.get("decision") != link.decision:
            words = DECISION_WORDS[lang]
            sent = words.get(form.get("decision", ""), repr(form.get("decision", "")))
            return self.pages.message(lang, 403, t["forbidden_title"], t["other_decision"].format(asked=words[link.decision], sent=sent))
        if form.get("order") != link.order_id:
            return self.pages.message(lang, 403, t["forbidden_title"], t["other_order"].format(order=link.order_id, sent=form.get("order", "")))
        return await self._guarded(lang, lambda: self._decide(request, lang, link, form.get("comment", "")), gone)

    async def _ask(self, request: Request, lang: str, link: ApprovalLink) -> Response:
        """GET never decides (mail scanners open every link): it shows the order and asks to confirm."""
        state = await self.temporal.approval(link.order_id)
        if (answer := self._not_theirs(lang, link, state)) is not None:
            return answer
        return self._form(request, lang, link, state)

    async def _decide(self, request: Request, lang: str, link: ApprovalLink, comment: str) -> Response:
        t = TEXT[lang]
        comment = comment.replace("\r\n", "\n")  # a browser sends a textarea's line ends as CRLF; maxlength counts one
        state = await self.temporal.approval(link.order_id)
        if (answer := self._not_theirs(lang, link, state)) is not None:
            return answer
        if len(comment) > MAX_COMMENT:
            notice = t["comment_too_long"].format(length=len(comment), max=MAX_COMMENT)
            return self._form(request, lang, link, state, status=400, comment=comment, notice=notice)
        update_id = "decide-" + hashlib.sha256(request.path_params["token"].encode()).hexdigest()[:32]
        try:
            answer = await self.temporal.decide(link.order_id, Decide(decision=link.decision, by=link.approver, comment=comment), update_id)
        except NotWaiting:  # it closed between the two calls: say how it ended
            answer = Refused(reason="")
        except NoAnswer:  # handed over, answer not back: it may well be recorded, so never "nothing was recorded"
            return self.pages.message(lang, 504, t["no_answer_title"], t["no_answer"])
        if isinstance(answer, ApprovalOutcome):
            title = t[f"{answer.status}_title"] if answer.status in ("approved", "rejected") else t["refused_title"]
            return self.pages.message(lang, 200, title.format(order=link.order_id), t["done"])
        ended = await self.temporal.approval(link.order_id)
        if ended.decision is not None:
            return self._answered(lang, link, ended)
        return self.pages.message(lang, 409, t["refused_title"], answer.reason)

    def _not_theirs(self, lang: str, link: ApprovalLink, state: ApprovalState) -> Response | None:
        """Ended, or asked of someone else: answered here, nothing sent to Temporal."""
        t = TEXT[lang]
        if state.decision is not None:
            return self._answered(lang, link, state)
        if state.requested_at is not None and int(state.requested_at.timestamp()) != int(link.asked.timestamp()):
            self.notices.warn("link earlier", f"refused a link of an earlier approval of order {link.order_id} (403)")
            return self.pages.message(lang, 403, t["forbidden_title"], t["earlier_approval"].format(order=link.order_id))
        if not any(same_address(link.approver, asked) for asked in state.approvers):
            asked = ", ".join(state.approvers) or "—"
            self.notices.warn("link not asked", f"refused a link of someone not asked to approve order {link.order_id} (403)")
            text = t["not_approver"].format(approver=link.approver, order=link.order_id, asked=asked)
            return self.pages.message(lang, 403, t["forbidden_title"], text)
        return None

    def _answered(self, lang: str, link: ApprovalLink, state: ApprovalState) -> Response:
        """A decided approval, to this link's visitor: their own answer is recorded (200: an approver checking, as the
        504 page asks, or sending the form again, is never told otherwise); anyone else's answer or button, 409."""
        t, outcome = TEXT[lang], state.decision
        assert outcome is not None
        theirs = outcome.status == DECIDED[link.decision] and same_address(outcome.by, link.approver)
        if not theirs:
            return self.pages.message(lang, 409, t["refused_title"], self._ended(lang, state))
        text = t["recorded"].format(decision=DECISION_WORDS[lang][link.decision], when=self.pages.when(outcome.at, lang))
        return self.pages.message(lang, 200, t[f"{outcome.status}_title"].format(order=link.order_id), text)

    def _form(
        self, request: Request, lang: str, link: ApprovalLink, state: ApprovalState, *, status: int = 200, comment: str = "", notice: str = ""
    ) -> Response:
        t = TEXT[lang]
        if state.order is None:
            return self.pages.message(lang, 404, t["no_approval_title"], t["no_approval"].format(order=link.order_id))
        return self.pages.page(
            "approval.html.j2", lang, status, title=t[f"{link.decision}_title"].format(order=link.order_id),
            order=state.order, approver=link.approver, decision=link.decision, answer_by=state.answer_by,
            action=request.url.path, comment=comment, notice=notice, max_comment=MAX_COMMENT,
        )  # fmt: skip

    def _ended(self, lang: str, state: ApprovalState) -> str:
        t, outcome = TEXT[lang], state.decision
        assert outcome is not None
        when = self.pages.when(outcome.at, lang)
        status = t.get(outcome.status, outcome.status)
        if outcome.status in ("approved", "rejected"):
            return t["already"].format(order=state.order_id, status=status, by=outcome.by, when=when)
        return t["ended"].format(order=state.order_id, status=status, when=when)

    async def no_token(self, request: Request) -> Response:
        lang = language_of(request.path_params["lang"])
        return self.pages.message(lang, 403, TEXT[lang]["forbidden_title"], TEXT[lang]["no_token"])

    # Draft previews (operators).

    async def draft(self, request: Request) -> Response:
        lang = self._operators_language()
        return await self._guarded(lang, lambda: self._draft_page(request, lang), self._no_order(lang))

    async def _draft_page(self, request: Request, lang: str) -> Response:
        held = await self._held_draft(request, lang)
        if isinstance(held, Response):
            return held
        return self.pages.page(
            "draft.html.j2", lang, title=TEXT[lang]["draft_title"].format(draft=held.id, order=request.state.order_id),
            draft=held, body_url=f"{request.url.path}/body", editor_url=f"/{lang}{request.url.path}",
        )  # fmt: skip

    async def draft_html(self, request: Request) -> Response:
        """The draft's HTML exactly as the `drafts` query holds it: what will be sent, not rendered again."""
        lang = self._operators_language()

        async def body() -> Response:
            held = await self._held_draft(request, lang)
            return held if isinstance(held, Response) else draft_body(held.html)

        return await self._guarded(lang, body, self._no_order(lang))

    async def _held_draft(self, request: Request, lang: str) -> Draft | Response:
        """The draft the link names, from the order's `drafts` query; or the page saying why not."""
        t = TEXT[lang]
        try:
            link = self.signer.read_draft(request.path_params["token"], self.clock())
        except LinkError as error:
            return self._forbidden(lang, error)
        request.state.order_id = link.order_id
        for draft in await self.temporal.drafts(order_workflow_id(link.order_id)):
            if draft.message_id == link.message_id:
                return draft
        return self.pages.message(lang, 404, t["draft_gone_title"], t["draft_gone"].format(order=link.order_id))

    def _operators_language(self) -> str:
        return language_of(self.settings.default_language)

    @staticmethod
    def _no_order(lang: str) -> tuple[str, str]:
        return TEXT[lang]["not_found_title"], TEXT[lang]["not_found"]

    # Answers for what went wrong.

    def _forbidden(self, lang: str, error: LinkError) -> Response:
        t = TEXT[lang]
        self.notices.warn(f"link {error.problem}", f"refused a link: {error.problem} (403; the token is not logged)")
        when = self.pages.when(error.expired, lang)
        text = t["expired_link"].format(when=when) if error.problem == "expired" else t[error.problem]
        return self.pages.message(lang, 403, t["forbidden_title"], text)

    async def _guarded(self, lang: str, answer: Callable[[], Awaitable[Response]], gone: tuple[str, str]) -> Response:
        """Temporal out of reach: try again, nothing lost (503). No such workflow: `gone` (404)."""
        t = TEXT[lang]
        try:
            return await answer()
        except Unreachable as error:
            self.notices.warn("503", f"answered 503 'try again in a few minutes': Temporal out of reach: {error}")
            return self.pages.message(lang, 503, t["unavailable_title"], t["unavailable"])
        except NotWaiting:
            return self.pages.message(lang, 404, *gone)

    async def broken(self, request: Request, exc: Exception) -> Response:
        """A bug of ours: logged with its traceback, answered with a page (and the same headers) all the same."""
        # The route's pattern, never the path: an approval's or a draft's path is its link, which answers for its owner.
        path = hashlib.sha256(request.url.path.encode()).hexdigest()[:12]  # the same link, the same hash
        log.exception("printroom web: %s %s (path %s)", request.method, _route_of(request), path, exc_info=exc)
        lang = language_of(request.url.path.strip("/").split("/")[0])
        return self.pages.message(lang, 500, TEXT[lang]["broken_title"], TEXT[lang]["broken"])

    async def not_found(self, request: Request, exc: Exception) -> Response:
        lang = language_of(request.url.path.strip("/").split("/")[0])
        return self.pages.message(lang, 404, TEXT[lang]["not_found_title"], TEXT[lang]["not_found"])


def _route_of(request: Request) -> str:
    """The pattern of the route a request took (/{lang}/approvals/{token}), to log without the link it carries."""
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is Match.FULL:
            return str(getattr(route, "path", type(route).__name__))
    return "(no route)"
