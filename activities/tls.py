"""Whom the SMTP connection trusts (S8, S9): verified TLS by default, a self-signed certificate still checked for
the host's name, and opportunistic STARTTLS (encrypted, not authenticated, RFC 7435) where none is configured."""

from __future__ import annotations

import ipaddress
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

from printroom.settings import SmtpSettings


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """Verification on, against the system's CAs or `ca_file`; the chain unchecked only where allow_self_signed
    says so, and then the host name is checked by `name_mismatch` instead."""
    if settings.security == "none":
        return opportunistic_context() if settings.opportunistic_tls else None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.allow_self_signed:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def opportunistic_context() -> ssl.SSLContext:
    """For security = 'none': encrypt when the server offers STARTTLS, trusting any certificate (better than clear
    text against a passive listener; `starttls` with verification is what protects against an active one)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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
