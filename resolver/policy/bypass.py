"""Bypass prevention: the few names whose *answer* tells a device not to go round the filter.

These are signals, not blocks, so each gets the negative answer its protocol expects:

* ``use-application-dns.net`` -> NXDOMAIN: Firefox's canary domain. A negative answer makes Firefox keep the
  network's resolver instead of turning on its own DNS-over-HTTPS ("network opts out").
* ``mask.icloud.com``, ``mask-h2.icloud.com`` -> NXDOMAIN: iCloud Private Relay. Apple's advice to networks
  that must see traffic is a negative answer for these two names (the device then tells its user that
  Private Relay is off for this network), not a timeout. ``mask-canary.icloud.com`` (used by beta releases)
  is answered the same way, as AdGuard Home's ``icloud_private_relay`` service does.
* ``_dns.resolver.arpa`` -> NODATA (NOERROR, no records): Discovery of Designated Resolvers (RFC 9462). A
  client asks this name for SVCB records naming an encrypted resolver to upgrade to; an empty answer means
  "no designated resolver", so it stays with Hearth.

Only these exact names. Public DoH/DoT/VPN/proxy hosts are a separate matter: the ``bypass`` list category,
with the built-in table of well-known DoH/DoT endpoints (:mod:`resolver.policy.encrypted_dns`) under it.
"""
from __future__ import annotations

from typing import Dict, Optional

from resolver.base.names import wire_name

__all__ = ["bypass_answer", "bypass_answer_wire", "BYPASS_ANSWERS", "BYPASS_ANSWERS_WIRE", "NXDOMAIN", "NODATA"]

NXDOMAIN = "nxdomain"
NODATA = "nodata"

BYPASS_ANSWERS: Dict[str, str] = {
    "use-application-dns.net": NXDOMAIN,
    "mask.icloud.com": NXDOMAIN,
    "mask-h2.icloud.com": NXDOMAIN,
    "mask-canary.icloud.com": NXDOMAIN,
    "_dns.resolver.arpa": NODATA,
}


_wire = wire_name


BYPASS_ANSWERS_WIRE: Dict[bytes, str] = {_wire(name): answer for name, answer in BYPASS_ANSWERS.items()}


def bypass_answer(name: str) -> Optional[str]:
    """"nxdomain", "nodata" or None for a normalised name (lower case, no trailing dot)."""
    return BYPASS_ANSWERS.get(name)


def bypass_answer_wire(name_wire: bytes) -> Optional[str]:
    """:func:`bypass_answer` for a lower-case, uncompressed wire name (``b"\\x04_dns\\x08resolver\\x04arpa\\x00"``)."""
    return BYPASS_ANSWERS_WIRE.get(name_wire)
