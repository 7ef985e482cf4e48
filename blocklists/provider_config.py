"""The ``provider:`` config section: which list provider this appliance is linked to.

Kept apart from :mod:`blocklists.provider_client` so that reading the config does not import ``requests`` and
the feed's signature code into the DNS engine, which never talks to the provider itself unless one is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resolver.base.configspec import option

from .feed_files import raw_public_key


def _check_url(text: str) -> str:
    text = str(text).strip()
    if text and not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"provider.url must be https://HOST/ (or http:// on a trusted network), got {text!r}")
    return text if not text or text.endswith("/") else text + "/"


def check_key(text: str) -> str:
    text = str(text).strip()
    if not text:
        return text
    if not raw_public_key(text):
        raise ValueError("public_key must be the provider's Ed25519 key in base64 (the line of its feed.pub)")
    return text


@dataclass(frozen=True)
class ProviderLinkConfig:
    url: str = option("", "Base URL of the list provider (e.g. https://provider.example/). Empty: no provider. "
                      "With a provider the appliance enrols once, polls its signed feed and forwards harmful-site "
                      "reports (domain, category, note, language, time: nothing about who sent them).",
                      check=_check_url, related="provider.token, feed.url")
    token: str = option("", "The enrolment token the provider's administrator gave your organisation (used once, "
                        "to register this appliance).")
    poll_interval: float = option(300, "How often the provider's feed is checked (a random jitter of up to 10% is "
                                  "added; a check that finds nothing new is a tiny conditional GET). Values "
                                  "under a minute are for tests.", duration=True, minimum=1, maximum=86400)
    public_key: str = option("", "The provider feed's Ed25519 public key (base64). Empty: the key the provider "
                             "gives at enrolment is pinned, and a changed key is refused.", check=check_key)

    def __post_init__(self) -> None:
        if self.url and not self.token:
            raise ValueError("provider.url needs provider.token (the enrolment token from the provider)")
