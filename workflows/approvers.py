"""Whether two email addresses name the same approver: `Head@Bücher.example` is `head@xn--bcher-kva.example`."""

from __future__ import annotations

import idna


def _domain(domain: str) -> str:
    try:
        return idna.decode(domain.strip().rstrip("."))
    except idna.IDNAError:
        return domain.strip().rstrip(".").casefold()


def address_key(address: str) -> str:
    """The form two addresses are compared in: the local part case-folded (as mail servers treat it in practice),
    the domain in Unicode, lower case."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().casefold()
    return f"{local.casefold()}@{_domain(domain).casefold()}"


def same_address(one: str, other: str) -> bool:
    return address_key(one) == address_key(other)
