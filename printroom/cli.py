"""The `printroom` command: dev (embedded default), worker, settings check, diagram."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from printroom.settings import Settings, SettingsError, load_settings, settings_path


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(args.settings)


def cmd_dev(args: argparse.Namespace) -> int:
    from printroom.dev import PortInUse, run_dev

    try:
        return asyncio.run(run_dev(_load(args)))
    except PortInUse as error:
        print(f"printroom dev: {error}", file=sys.stderr)
        return 2


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.main import StartupError, run_worker, stop_on_signals

    settings = _load(args)

    async def main() -> None:
        await run_worker(settings, stop_on_signals())

    try:
        asyncio.run(main())
    except (StartupError, RuntimeError) as error:  # RuntimeError: the client could not connect
        print(f"printroom worker: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_settings_check(args: argparse.Namespace) -> int:
    settings = _load(args)
    source = settings_path(args.settings) or "defaults (no settings file)"
    print(f"settings OK: {source}")
    print(f"  sender: {settings.sender.name} <{settings.sender.address}>; SMTP {settings.smtp.host}:{settings.smtp.effective_port} ({settings.smtp.security})")
    return 0


def cmd_smtp_test(args: argparse.Namespace) -> int:
    from activities.smtp_check import check_connection, report

    settings = _load(args)
    steps = asyncio.run(check_connection(settings.smtp))
    print(report(settings.smtp, steps))
    return 0 if all(step.ok for step in steps) else 1


def cmd_smtp_send_test(args: argparse.Namespace) -> int:
    from activities.deliveries import DeliveryLog
    from activities.email import EmailActivities
    from activities.rendering import TemplateError, TemplateRenderer
    from activities.smtp import DeliveryError, SmtpTransport

    settings = _load(args)
    emails = EmailActivities(settings, TemplateRenderer(), SmtpTransport(settings.smtp), DeliveryLog(settings.deliveries_dir))
    try:
        subject, message_id = asyncio.run(emails.send_test_email(args.to))
    except (DeliveryError, TemplateError) as error:
        print(f"printroom smtp send-test: not sent: {error}", file=sys.stderr)
        return 1
    print(f"sent {subject!r} to {args.to} (Message-ID {message_id}) through {settings.smtp.host}:{settings.smtp.effective_port}")
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    from statemachines.order import ORDER

    tables = {"order": ORDER}
    print(tables[args.machine].to_mermaid(), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="printroom", description=__doc__)
    top.add_argument("--settings", help="settings file (default: $PRINTROOM_SETTINGS, else ./printroom.toml if present)")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the embedded default: Temporal dev server, SMTP capture, worker").set_defaults(
        run=cmd_dev
    )
    sub.add_parser("worker", help="run the worker against the Temporal service in the settings").set_defaults(
        run=cmd_worker
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
    send_test.add_argument("--to", required=True, help="the address to send it to")
    send_test.set_defaults(run=cmd_smtp_send_test)
    diagram = sub.add_parser("diagram", help="print a state machine as a Mermaid diagram")
    diagram.add_argument("machine", choices=["order"])
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
    except KeyboardInterrupt:
        code = 130
    # temporalio can crash the interpreter at exit (sdk-python issue 300): leave with our own code instead.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
