"""Whom the SMTP connection trusts (S8, S9): verified TLS by default, a self-signed certificate still checked for
the host's name, and opportunistic STARTTLS (encrypted, not authenticated, RFC 7435) where none is configured."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from printroom.settings import SmtpSettings


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """Verification on, against the system's CAs or `ca_file`; the chain unchecked only where allow_self_signed
    says so (the host name is then checked by `name_mismatch` instead) or where tls_fingerprint pins the
    certificate itself (checked by `fingerprint_mismatch`)."""
    if settings.security == "none":
        return opportunistic_context() if settings.opportunistic_tls else None
    context = verifying_context(settings.ca_file)
    if settings.allow_self_signed or (settings.tls_fingerprint and not settings.ca_file):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """Chain and host name checked against the system's CAs, or against `ca_file`; a `ca_file` holding the server's
    own certificate (issued by a CA not given) trusts it as itself: it pins it."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if ca_file:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def opportunistic_context() -> ssl.SSLContext:
    """For security = 'none': encrypt when the server offers STARTTLS, trusting any certificate (better than clear
    text against a passive listener; `starttls` with verification is what protects against an active one)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_refused(settings: SmtpSettings, der: bytes | None) -> str | None:
    """What the TLS handshake did not check and the settings ask for: the host name of a certificate taken without
    its chain (allow_self_signed), and the pinned fingerprint. None: the certificate is taken."""
    if settings.allow_self_signed and (why := name_mismatch(settings.host, der)):
        return why
    return fingerprint_mismatch(settings, der)


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256, written as `openssl x509 -fingerprint -sha256` and smtp.tls_fingerprint write it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fingerprint_mismatch(settings: SmtpSettings, der: bytes | None) -> str | None:
    """Why the server's certificate is not the one smtp.tls_fingerprint pins, or None (also when none is pinned).
    Checked before AUTH on every connection: a man in the middle gets no password."""
    if not settings.tls_fingerprint:
        return None
    if der is None:
        return f"{settings.host} showed no certificate, and smtp.tls_fingerprint pins one"
    seen = fingerprint(der)
    if seen == settings.tls_fingerprint:
        return None
    return (
        f"the certificate of {settings.host} has SHA-256 fingerprint {seen}, not {settings.tls_fingerprint} "
        "(smtp.tls_fingerprint): someone may be between us and the server; if its certificate was renewed, check the "
        "new one with its administrator and pin it"
    )


def certificate_names(der: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is for (its subjectAltName, else its common name)."""
    certificate = x509.load_der_x509_certificate(der)
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*alternative.get_values_for_type(x509.DNSName), *map(str, alternative.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = []
    return names or [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def name_mismatch(host: str, der: bytes | None) -> str | None:
    """Why a certificate accepted without its chain (allow_self_signed) is not this host's, or None if it is."""
    if der is None:
        return f"{host} showed no certificate"
    names = certificate_names(der)
    wanted = _a_labels(host.lower().rstrip("."))
    if any(_matches(wanted, name.lower().rstrip(".")) for name in names):
        return None
    return (
        f"the certificate of {host} is for {', '.join(names) or 'no name'}, not {host} (allow_self_signed skips the "
        "chain, never the name); set smtp.host to a name it is for, or pin the certificate with smtp.ca_file"
    )


def _a_labels(host: str) -> str:
    """A host name as certificates write it: an international one in its ASCII (IDNA) form."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return host.encode("idna").decode("ascii") if not host.isascii() else host


def _matches(host: str, name: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(name)
    except ValueError:
        pass
    if name.startswith("*."):  # one label, left-most only (RFC 6125 6.4.3)
        return "." in host and host.split(".", 1)[1] == name[2:] and not host.startswith(".")
    return host == name
