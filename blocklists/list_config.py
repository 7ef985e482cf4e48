"""The list sections of the configuration: ``lists:`` (subscribed lists) and ``feed:`` (a signed provider feed),
declared once with their checks (see :mod:`resolver.base.configspec`)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from resolver.base.configspec import option

from .parsers import FORMATS

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _check_id(text: str) -> str:
    if not _ID.match(str(text)):
        raise ValueError(f"bad list id {text!r}: use lower-case letters, digits, '-', '_', '.'")
    return str(text)


def _check_url(text: str) -> str:
    text = str(text).strip()
    if not re.match(r"^(https?|file)://", text):
        raise ValueError(f"list url must start with https://, http:// or file://, got {text!r}")
    return text


def check_category(text: str) -> str:
    text = str(text).strip().lower()
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,31}$", text):
        raise ValueError(f"bad category {text!r}: a short lower-case word such as adult, gambling, ads")
    return text


@dataclass(frozen=True)
class ListConfig:
    id: str = option("", "Short unique name of the list (lower case, digits, - _ .).", check=_check_id)
    url: str = option("", "Where to get it: https://…, http://… or file:///path.", check=_check_url)
    format: str = option("auto", "List syntax; auto detects it. See docs/list-formats.md for what each blocks.",
                         choices=("auto",) + FORMATS)
    category: str = option("", "Category the list's names belong to (adult, gambling, violence, drugs, dating, "
                           "social, games, video, ads, trackers, malware, phishing, scam, bypass, or your own).",
                           check=check_category)
    enabled: bool = option(True, "Set false to keep the entry but not use the list.")
    mandatory: bool = option(False, "Enforced in every profile, whatever its categories (school or legal "
                             "requirements).")

    def __post_init__(self) -> None:
        if not self.id or not self.url or not self.category:
            raise ValueError("each list needs id, url and category")


def _check_key(text: str) -> str:
    import base64
    import binascii

    if not text:
        return text
    try:
        raw = base64.b64decode(str(text).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public_key must be the base64 line from feed.pub") from None
    if len(raw) != 32:
        raise ValueError("public_key must be a 32-byte Ed25519 key in base64 (the line in feed.pub)")
    return str(text).strip()


@dataclass(frozen=True)
class FeedConfig:
    url: str = option("", "URL of a provider feed's manifest.json (https:// or file://), e.g. "
                      "https://feeds.example/hearth/manifest.json; empty: no feed.")
    public_key: str = option("", "The feed's Ed25519 public key (base64, from `hearth feed keygen`). Required "
                             "with url: unsigned or mis-signed feeds are refused.", check=_check_key)
    update_interval: float = option(6 * 3600, "How often the feed is checked (a random jitter of up to 10% is "
                                    "added so appliances do not all ask at once).", duration=True, minimum=300)
    max_list_size: int = option(64 * 1024 * 1024, "Largest list accepted, in bytes (also after decompression).",
                                minimum=1024)
    download_deadline: float = option(120, "Longest time one download (the feed's manifest, its signature, a "
                                      "feed list or a subscribed list) may take: connecting, waiting for the "
                                      "headers, the body and any retries together. A server that sends its "
                                      "answer one byte at a time is cut off at this time.", duration=True,
                                      minimum=1, maximum=86400, related="feed.update_time_limit")
    update_time_limit: float = option(1800, "Longest time a whole list update (every download and the compile) "
                                      "may run when the scheduler or the web UI starts it: past it the update "
                                      "is stopped, the failure shown in `hearth lists status`, and the lists "
                                      "in force stay. An update that holds the lock longer is taken over by "
                                      "the next one.", duration=True, minimum=5, maximum=7 * 86400,
                                      related="feed.download_deadline")

    def __post_init__(self) -> None:
        if self.url and not self.public_key:
            raise ValueError("feed.url needs feed.public_key: Hearth only accepts signed feeds")
        if self.url and not re.match(r"^(https?|file)://", self.url):
            raise ValueError(f"feed.url must be https://, http:// or file://, got {self.url!r}")
