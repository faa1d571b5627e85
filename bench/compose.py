"""Benchmark: composing one email (render, inline CSS, text alternative, MIME, serialise), no attachments, one core.

Runs printroom's own path (the one the activity and `templates preview` take) and, interleaved in the same run, the
baseline the target was set against: a cached sandboxed Jinja render, the stdlib MIME build and serialise, with each
of the stdlib's two APIs. Prints the median per email of each, the ratios, and where printroom's time goes.

    .venv/bin/python bench/compose.py [--emails 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.headerregistry import Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from email import policy  # noqa: E402
from email.message import EmailMessage  # noqa: E402
from email.mime.multipart import MIMEMultipart  # noqa: E402
from email.mime.text import MIMEText  # noqa: E402
from email.utils import format_datetime, formataddr  # noqa: E402

from printroom.activities.compose import build_message  # noqa: E402
from printroom.activities.email import EmailActivities  # noqa: E402
from printroom.activities.rendering import RenderedEmail, plain_text, template_file  # noqa: E402
from printroom.worker.sample import SAMPLE_ORDER, sample_request  # noqa: E402
from printroom.activities.variables import EmailContext, template_values  # noqa: E402
from printroom.settings import Settings  # noqa: E402
from printroom.statemachines.emails import EMAIL_TRIGGERS  # noqa: E402

TARGET_MS = 2.0
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)
SENDER = Address("Print Room", addr_spec="printroom@example.com")
# The customer's emails, in each shipped language: what a print room sends most.
CASES = [(t, lang) for t in EMAIL_TRIGGERS if not t.startswith(("approval", "order_received_operator")) for lang in ("en", "fr", "de")]


def medians_ms(runs: dict[str, Callable[[int], object]], emails: int) -> dict[str, float]:
    """Median per call of each run, interleaved call by call so that a noisy host slows them alike."""
    for n in range(200):  # warm caches: compiled templates, Babel's locale data
        for run in runs.values():
            run(n)
    timings: dict[str, list[int]] = {name: [] for name in runs}
    for n in range(emails):
        for name, run in runs.items():
            start = time.perf_counter_ns()
            run(n)
            timings[name].append(time.perf_counter_ns() - start)
    return {name: statistics.median(t) / 1e6 for name, t in timings.items()}


def email_message(html: str, subject: str) -> bytes:
    """The other stdlib MIME: the EmailMessage API (policy.default) that the email docs recommend today."""
    message = EmailMessage()
    message["From"] = Address("Print Room", addr_spec="printroom@example.com")
    message["To"] = "marie@example.org"
    message["Subject"] = subject
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = "<x@example.com>"
    message.set_content("", cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message.as_bytes(policy=policy.SMTP)


def stdlib_message(html: str, subject: str) -> bytes:
    """The baseline's MIME: the compat32 classes (email.mime), as documented, nothing tuned."""
    message = MIMEMultipart("alternative")
    message["From"] = formataddr(("Print Room", "printroom@example.com"))
    message["To"] = "marie@example.org"
    message["Subject"] = subject
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = "<x@example.com>"
    message.attach(MIMEText("", "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=3000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says

    settings = Settings()
    assembler = EmailActivities.from_settings(settings).assembler
    requests = [(sample_request(t, SAMPLE_ORDER.model_copy(update={"language": lang})), lang) for t, lang in CASES]

    def printroom(n: int) -> bytes:
        request, _ = requests[n % len(requests)]
        return assembler.assemble(request, "customer", to=["marie@example.org"], cc=[], now=NOW).data

    # The baseline: the same templates (compiled, cached) rendered to HTML, and the stdlib MIME build + serialise.
    renderer = assembler.renderer
    prepared = []
    for request, lang in requests:
        compiled = renderer._env.get_template(template_file(request.email_trigger, lang))
        context = EmailContext(language=lang, print_room_name="Print Room", sender_address="printroom@example.com", order_url_pattern="https://shop.example.com/orders/{order_id}", now=NOW, request=request)
        prepared.append((compiled, template_values(context, request.email_trigger), lang, request.email_trigger))

    def baseline(n: int) -> bytes:
        compiled, values, _, _ = prepared[n % len(prepared)]
        return stdlib_message(compiled.render(values), "Your order")

    def baseline_email_message(n: int) -> bytes:
        compiled, values, _, _ = prepared[n % len(prepared)]
        return email_message(compiled.render(values), "Your order")

    # Where printroom's time goes, stage by stage, on the same emails.
    htmls = [compiled.render(values) for compiled, values, _, _ in prepared]
    contexts = [
        EmailContext(language=lang, print_room_name="P", sender_address="p@example.com", order_url_pattern="https://shop.example.com/orders/{order_id}", now=NOW, request=request)
        for request, lang in requests
    ]
    inliner = renderer._inliner
    stages: dict[str, Callable[[int], object]] = {
        "variables (Babel formats)": lambda n: template_values(contexts[n % len(contexts)], requests[n % len(requests)][0].email_trigger),
        "render: Jinja, CSS inline, text": lambda n: renderer.render(prepared[n % len(prepared)][3], prepared[n % len(prepared)][2], prepared[n % len(prepared)][1]),
        "  of which CSS inlining": lambda n: inliner.inline(htmls[n % len(htmls)]),
        "  of which text (inscriptis)": lambda n: plain_text(htmls[n % len(htmls)]),
        "MIME build + serialise": lambda n: build_message(
            RenderedEmail("Subject", htmls[n % len(htmls)], "text", "en", "t"), sender=SENDER, to=["m@example.org"],
            message_id="<x@example.com>", date=NOW,
        ),
    }

    figures = medians_ms({"printroom": printroom, "compat32": baseline, "EmailMessage": baseline_email_message}, args.emails)
    full, base, modern = figures["printroom"], figures["compat32"], figures["EmailMessage"]
    print(f"compose, median per email over {args.emails} emails ({len(CASES)} customer emails: triggers x en/fr/de), one core:")
    print(f"  printroom (render, CSS inline, text, MIME, serialise):   {full:.3f} ms   target <= {TARGET_MS} ms: {'met' if full <= TARGET_MS else 'NOT met'}")
    print(f"  baseline: Jinja render + email.mime (compat32) build:    {base:.3f} ms   printroom / it: {full / base:.2f}")
    print(f"  baseline: Jinja render + EmailMessage (policy.default):  {modern:.3f} ms   printroom / it: {full / modern:.2f}")
    print("  where printroom's time goes (each stage alone):")
    for name, median in medians_ms(stages, min(args.emails, 1000)).items():
        print(f"    {name:<34} {median:.3f} ms")


if __name__ == "__main__":
    main()
