"""Whether two email addresses name the same approver: `Head@Bücher.example` is `head@xn--bcher-kva.example`."""

from __future__ import annotations

import idna


def _domain(domain: str) -> str:
    """The domain as DNS knows it (UTS 46 mapping, then IDNA 2008): `ｂücher.example` and `XN--BCHER-KVA.example` are
    `xn--bcher-kva.example`, while `straße.de` and `strasse.de` stay two domains."""
    try:
        return idna.encode(domain.strip().rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return domain.strip().rstrip(".").lower()


def address_key(address: str) -> str:
    """The form two addresses are compared in: the local part in lower case (as mail servers treat it in practice;
    not case-folded, which would make `straße@` and `strasse@` one mailbox), the domain as DNS knows it."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.lower()}@{_domain(domain)}"


def same_address(one: str, other: str) -> bool:
    return address_key(one) == address_key(other)
