"""The one normalised form of a domain name: lower case, IDNA punycode, no trailing dot."""
from __future__ import annotations

import re

import idna

_ASCII_NAME = re.compile(r"^[a-z0-9_*]([a-z0-9_\-]{0,62})?(\.[a-z0-9_]([a-z0-9_\-]{0,62})?)*$")


def wire_name(name: str) -> bytes:
    """A normalised (ASCII) name as an uncompressed wire name:
    ``"www.example.com"`` → ``b"\\x03www\\x07example\\x03com\\x00"``."""
    return b"".join(bytes((len(label),)) + label.encode("ascii") for label in name.split(".")) + b"\x00"


def normalise_name(text: str, *, wildcard: bool = False) -> str:
    """``"Ví-Dụ.VN."`` → ``"xn--v-d-rma6749a.vn"``; raises ValueError for what is not a host name.

    Underscores are allowed (service labels such as ``_dns.resolver.arpa``).
    With ``wildcard``, a leading ``*.`` is accepted and kept.
    """
    name = str(text).strip().rstrip(".").lower()
    if not name:
        raise ValueError("empty name")
    prefix = ""
    if wildcard and name.startswith("*."):
        prefix, name = "*.", name[2:]
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError:
            try:
                name = name.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise ValueError(f"not a valid international name: {text!r} ({exc})") from None
    if len(name) > 253 or not _ASCII_NAME.match(name) or "*" in name:
        raise ValueError(f"not a valid host name: {text!r}")
    return prefix + name


def site_name(text: str, where: str = "name") -> str:
    """A site someone typed (to report, block or unblock): :func:`normalise_name`, and it must have a dot.
    Raises ValueError whose message starts with ``where``."""
    try:
        name = normalise_name(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if "." not in name:
        raise ValueError(f"{where}: {text[:80]!r} is not a site name (no dot)")
    return name
