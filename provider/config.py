"""The provider's configuration file (``hearth provider run -c FILE``), declared with resolver.base.configspec
like the appliance's: every problem is reported as ``FILE:LINE: dotted.key: what``."""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Optional

from blocklists.list_config import ListConfig
from resolver.base.configspec import ConfigError, load_section_file, option  # noqa: F401 - ConfigError re-exported

ROLES = ("admin", "reviewer", "publisher", "auditor")   # auditor: read-only


def check_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); raises ValueError."""
    text = str(text).strip()
    m = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]+):(\d+)$", text)
    if not m:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8090, [::1]:8090), got {text!r}")
    host, port = m.group(1), int(m.group(2))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    return host, port


def _check_listen_text(text: str) -> str:
    check_listen(text)
    return str(text).strip()


def _check_database(text: str) -> str:
    text = str(text).strip()
    if text and not re.match(r"^(sqlite:///|postgresql(\+psycopg)?://)", text):
        raise ValueError("expected empty (a SQLite file in data_dir), sqlite:///PATH or postgresql://USER@HOST/DB, "
                         f"got {text[:40]!r}")
    return text


@dataclass(frozen=True)
class ProviderWebConfig:
    listen: str = option("127.0.0.1:8090", "Address of the provider's API, console and feed (put an HTTPS proxy "
                         "in front of it for appliances on the internet).", check=_check_listen_text)
    max_body: int = option(1024 * 1024, "Largest request body accepted, in bytes (an order's domain list "
                           "included).", minimum=1024)
    threads: int = option(8, "Worker threads of the web server.", minimum=1, maximum=256)


@dataclass(frozen=True)
class ProviderConfig:
    data_dir: str = option("./provider-data", "Where the provider keeps its signing key (keys/), the published "
                           "feed (feed/) and, by default, its SQLite database.")
    database: str = option("", "Empty: a SQLite file provider.db in data_dir (for a trial). Production: "
                           "postgresql://USER:PASSWORD@HOST/DB (psycopg 3).", check=_check_database)
    log_level: str = option("info", "Least severe log messages written to standard error.",
                            choices=("debug", "info", "warning", "error"))
    feed_title: str = option("Hearth provider feed", "Title of the published feed (appliances show it).")
    report_limit: int = option(60, "Reports one appliance may send per hour; more get 429.", minimum=1)
    mirrors: list[ListConfig] = option(
        [], "Upstream lists the provider subscribes to and publishes in its feed beside the curated lists (as "
        "mirror-ID), downloaded at each publish; one that fails keeps its last good copy.",
        example=[{"id": "hostsvn-gambling", "url": "https://raw.githubusercontent.com/bigdargon/hostsVN/master/"
                  "option/gambling-VN.txt", "format": "auto", "category": "gambling", "enabled": True,
                  "mandatory": False}])
    mirror_deadline: float = option(120, "Longest time one mirror's download may take (connecting, headers, body "
                                    "and retries together); past it the last good copy is published.",
                                    duration=True, minimum=1, maximum=3600)
    mirror_max_size: int = option(64 * 1024 * 1024, "Largest mirrored list accepted, in bytes (also after "
                                  "decompression).", minimum=1024)
    web: ProviderWebConfig = option(ProviderWebConfig(), "The provider's web server.")

    def __post_init__(self) -> None:
        ids = [m.id for m in self.mirrors]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"mirrors: id {dup[0]!r} is used twice")

    @property
    def database_url(self) -> str:
        if self.database.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.database[len("postgresql://"):]
        if self.database:
            return self.database
        return "sqlite:///" + os.path.abspath(os.path.join(self.data_dir, "provider.db"))


def load_provider_config(path: Optional[str]) -> ProviderConfig:
    """Read and check ``path`` (None: the defaults). Raises ConfigError."""
    return load_section_file(ProviderConfig, path)
