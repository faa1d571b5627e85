"""`printroom smtp test` (S7): connect to the configured server step by step and say which step failed and why."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass

import aiosmtplib

from printroom.activities.smtp import certificate_advice, certificate_error
from printroom.activities.tls import certificate_refused, fingerprint, opportunistic_context, tls_context
from printroom.settings import SmtpSettings


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str


def _describe_tls(client: aiosmtplib.SMTP, settings: SmtpSettings) -> str:
    tls = client.transport.get_extra_info("ssl_object") if client.transport else None
    if tls is None:
        return "encrypted"
    version = tls.version()
    if settings.security == "none":
        return f"{version} by opportunistic STARTTLS, certificate not verified (use security = 'starttls' to verify it)"
    der = tls.getpeercert(binary_form=True)
    seen = f"; SHA-256 fingerprint {fingerprint(der)}" if der else ""
    if settings.tls_fingerprint:
        return f"{version}, certificate pinned by smtp.tls_fingerprint{seen}"
    if settings.allow_self_signed:
        return f"{version}, certificate chain NOT verified (smtp.allow_self_signed = true), host name checked{seen}"
    cert = tls.getpeercert() or {}
    subject = dict(part[0] for part in cert.get("subject", ())).get("commonName", settings.host)
    return f"{version}, certificate for {subject} verified, valid until {cert.get('notAfter', '?')}{seen}"


def _tls_step(client: aiosmtplib.SMTP, settings: SmtpSettings) -> Step:
    """The TLS line, written once the certificate has passed what the handshake did not check (the host name of a
    self-signed one, the pinned fingerprint): "ok ... pinned" then "FAILED ... not <pin>" told both."""
    tls = client.get_transport_info("ssl_object")
    if tls is not None and (why := certificate_refused(settings, tls.getpeercert(binary_form=True))):
        return Step("tls", False, why)
    return Step("tls", True, _describe_tls(client, settings))


async def _seen_fingerprint(settings: SmtpSettings) -> str:
    """The fingerprint of the certificate the server shows, fetched on a second connection that trusts it only to
    read it (nothing is sent): said beside "not trusted", so that an administrator who checks it can pin it."""
    client = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.effective_port, timeout=settings.timeout_seconds,
        use_tls=settings.security == "tls", start_tls=False, tls_context=opportunistic_context(),
    )  # fmt: skip
    try:
        await client.connect()
        if settings.security == "starttls":
            await client.ehlo()
            await client.starttls(tls_context=opportunistic_context())
        tls = client.get_transport_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
    except (aiosmtplib.SMTPException, OSError):
        return ""
    finally:
        client.close()
    return f"; its certificate has SHA-256 fingerprint {fingerprint(der)}" if der else ""


async def check_connection(settings: SmtpSettings) -> list[Step]:
    """Stops at the first failed step: what follows it cannot be tried."""
    host, port, timeout = settings.host, settings.effective_port, settings.timeout_seconds
    steps: list[Step] = []
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        steps.append(Step("resolve", True, f"{host} is {', '.join(sorted({i[4][0] for i in infos}))}"))
    except socket.gaierror as error:
        return [*steps, Step("resolve", False, f"{host} cannot be resolved ({error.strerror}); check smtp.host")]

    started = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.close()
        steps.append(Step("connect", True, f"TCP {host}:{port} answered in {(time.monotonic() - started) * 1000:.0f} ms"))
    except (TimeoutError, asyncio.TimeoutError):
        return [*steps, Step("connect", False, f"no answer from {host}:{port} within {timeout:.0f}s (a firewall dropping it?)")]
    except ConnectionRefusedError:
        return [*steps, Step("connect", False, f"{host}:{port} refused the connection: nothing listens there; check smtp.port")]
    except OSError as error:
        return [*steps, Step("connect", False, f"cannot connect to {host}:{port}: {error.strerror or error}")]

    context = tls_context(settings)
    client = aiosmtplib.SMTP(
        hostname=host, port=port, timeout=timeout, use_tls=settings.security == "tls", start_tls=False,
        tls_context=context,
    )  # fmt: skip
    try:
        try:
            greeting = await client.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            if settings.security == "tls":
                if (bad := certificate_error(error)) is not None:
                    return [*steps, Step("tls", False, certificate_advice(settings, bad) + await _seen_fingerprint(settings))]
                if isinstance(error.__cause__, ssl.SSLError):
                    advice = "is this port implicit TLS? For port 587 use smtp.security = 'starttls'"
                    return [*steps, Step("tls", False, f"TLS handshake failed ({error.__cause__.reason}); {advice}")]
            if isinstance(error, aiosmtplib.SMTPTimeoutError):
                return [*steps, Step("greeting", False, f"connected, but no SMTP greeting within {timeout:.0f}s")]
            return [*steps, Step("greeting", False, f"no SMTP greeting: {error}")]
        if settings.security == "tls":
            steps.append(_tls_step(client, settings))
            if not steps[-1].ok:
                return steps
        steps.append(Step("greeting", True, f"{greeting.code} {greeting.message.splitlines()[0]}"))

        await client.ehlo()
        if settings.security == "starttls" and not client.supports_extension("starttls"):
            return [*steps, Step("tls", False, "the server does not offer STARTTLS; use smtp.security = 'none' or 'tls'")]
        if settings.security == "starttls" or (context and settings.security == "none" and client.supports_extension("starttls")):
            try:
                await client.starttls(tls_context=context)
            except (aiosmtplib.SMTPException, OSError) as error:
                if settings.security == "none":  # only opportunistic: sending goes on in clear, and so does this
                    steps.append(Step("tls", True, f"opportunistic STARTTLS failed ({error}): mail goes in clear"))
                    if settings.username:
                        steps.append(Step("authentication", True, "not checked after the failed STARTTLS; sending logs in, in clear"))
                    return steps
                bad = certificate_error(error)
                detail = certificate_advice(settings, bad) + await _seen_fingerprint(settings) if bad else f"STARTTLS failed: {error}"
                return [*steps, Step("tls", False, detail)]
            steps.append(_tls_step(client, settings))
            if not steps[-1].ok:
                return steps
        elif settings.security == "none":
            why = "smtp.opportunistic_tls = false" if not settings.opportunistic_tls else "the server offers no STARTTLS"
            steps.append(Step("tls", True, f"none: {why}, mail goes in clear"))

        if settings.username:
            try:
                await client.login(settings.username, settings.secret() or "")
                steps.append(Step("authentication", True, f"logged in as {settings.username}"))
            except aiosmtplib.SMTPAuthenticationError as error:
                detail = f"credentials of {settings.username!r} rejected ({error.code} {error.message}); check smtp.username and the password"
                return [*steps, Step("authentication", False, detail)]
            except aiosmtplib.SMTPException as error:
                return [*steps, Step("authentication", False, f"{error}; check smtp.security")]
        else:
            offered = client.server_auth_methods
            note = f" (the server offers AUTH {' '.join(offered)})" if offered else ""
            steps.append(Step("authentication", True, f"anonymous: no smtp.username{note}"))
        return steps
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()


def report(settings: SmtpSettings, steps: list[Step]) -> str:
    user = f", user {settings.username}" if settings.username else ", anonymous"
    lines = [f"SMTP connection test: {settings.host}:{settings.effective_port}, security {settings.security}{user}"]
    lines += [f"  {'ok' if s.ok else 'FAILED':6} {s.name:15} {s.detail}" for s in steps]
    lines.append("OK" if steps and all(s.ok for s in steps) else f"FAILED at {steps[-1].name}")
    return "\n".join(lines)
