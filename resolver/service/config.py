"""Hearth's configuration: the sections assembled, loaded from one YAML file.

Sections live beside the code they configure; this module only puts them
together, finds the file (``--config`` or ``$HEARTH_CONFIG``) and turns every
problem into ``FILE:LINE: dotted.key: what is wrong``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from blocklists.list_config import FeedConfig, ListConfig
from blocklists.provider_config import ProviderLinkConfig

from resolver.engine.cache import CacheConfig
from resolver.policy.clients import ClientsConfig
from resolver.base.configspec import ConfigError, load_section_file, example_yaml, option, reference_markdown
from resolver.engine.dnsconfig import DnsConfig, parse_listen
from resolver.engine.localrecords import LocalRecord
from resolver.policy.blocking import BlockingConfig
from resolver.engine.querylog import QueryLogConfig
from resolver.store.open import check_node_name, check_store

ENV_VAR = "HEARTH_CONFIG"
EMBEDDED = "<embedded defaults>"


def _check_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Ho_Chi_Minh)") from None
    return name


def _check_web_listen(text: str) -> str:
    parse_listen(text)
    return str(text).strip()


def _check_optional_listen(text: str) -> str:
    return _check_web_listen(text) if str(text).strip() else ""


def _check_country(text: str) -> str:
    code = str(text).strip().upper()
    if code and (len(code) != 2 or not code.isalpha() or not code.isascii()):
        raise ValueError(f"not a two-letter country code: {text!r}")
    return code


@dataclass(frozen=True)
class WebConfig:
    listen: str = option("127.0.0.1:8080", "Address of the web UI (admin console, block page, API).",
                         check=_check_web_listen)
    enabled: bool = option(True, "Start the web UI process with `hearth run`.")
    block_page_listen: str = option(
        "", "A second address serving only the kid-facing block page, for blocking.mode page: e.g. "
        "0.0.0.0:80 (needs the right to bind port 80) with blocking.page_ipv4 set to this machine's LAN "
        "address. Empty: off (the block page is still at /blocked?domain=… on web.listen).",
        check=_check_optional_listen, related="blocking.mode, blocking.page_ipv4")
    session_secret_file: str = option(
        "", "File holding the key that signs login sessions; made (random, mode 0600) at first start. "
        "Empty: web-secret.key in data_dir.")
    secure_cookies: bool = option(False, "Mark cookies Secure (sent over HTTPS only): turn on when the UI is "
                                  "served through an HTTPS proxy.")
    login_max_failures: int = option(5, "Failed logins from one client address before it waits login_lockout "
                                     "(doubling with each further failure, at most a day; other addresses are "
                                     "not affected). An account slows down after 4 times as many from all "
                                     "addresses, except for browsers that signed in to it before.", minimum=1)
    login_lockout: float = option(900, "The first wait after login_max_failures.", duration=True, minimum=1)
    metrics_token: str = option(
        "", "A secret Prometheus must send to read /metrics: `Authorization: Bearer TOKEN` (Prometheus: "
        "`authorization: {credentials_file: ...}`) or as the HTTP basic-auth password. Empty: the token in "
        "data_dir/metrics_token if that file exists, else /metrics is open to anyone who reaches it.",
        related="web.metrics_listen")
    metrics_listen: str = option(
        "", "A separate address serving only /metrics (and /healthz), e.g. 127.0.0.1:9153 for a Prometheus on "
        "this machine; /metrics then leaves web.listen. Empty: /metrics is on web.listen.",
        check=_check_optional_listen, related="web.metrics_token")
    public_form_limit: int = option(10, "Ask-for-access and harmful-site reports one client may send per hour "
                                    "(the public forms need no login).", minimum=1)
    hotline_country: str = option("VN", "Country whose child-protection hotline the block page shows (two-letter "
                                  "code; VN: 111, Tổng đài quốc gia bảo vệ trẻ em). Empty: no hotline.",
                                  check=_check_country, related="web.hotline_number, web.hotline_name")
    hotline_number: str = option("", "Hotline number to show instead of hotline_country's.")
    hotline_name: str = option("", "Hotline name to show with hotline_number.")


@dataclass(frozen=True)
class Config:
    data_dir: str = option("./hearth-data", "Where Hearth keeps its store, compiled lists and state. Relative "
                           "paths are taken from the directory Hearth is started in.")
    store: str = option("", "Where devices, profiles, schedules, users and the query log are kept. Empty: the "
                        "embedded SQLite file in data_dir. postgresql://user@host/database: a PostgreSQL database "
                        "shared by several Hearth nodes (see docs/campus.md).", check=check_store,
                        related="node_name")
    node_name: str = option("", "This node's name in a shared store (query log and audit rows carry it). "
                            "Empty: the host's name.", check=check_node_name, related="store")
    timezone: str = option("Asia/Ho_Chi_Minh", "Time zone for schedules and reports (IANA name).",
                           check=_check_timezone)
    log_level: str = option("info", "Least severe log messages written to standard error.",
                            choices=("debug", "info", "warning", "error"))
    dns: DnsConfig = option(DnsConfig(), "The DNS engine: sockets, upstreams, access control.")
    cache: CacheConfig = option(CacheConfig(), "The answer cache.")
    local_records: list[LocalRecord] = option(
        [], "Names Hearth answers itself, e.g. the appliance's own name.",
        example=[{"name": "hearth.lan", "type": "A", "value": "192.168.1.2", "ttl": 300, "ptr": True}])
    blocking: BlockingConfig = option(BlockingConfig(), "How blocked names are answered; bundled starter lists.")
    lists: list[ListConfig] = option(
        [], "Blocklists to subscribe to, Pi-hole adlist style. Each list's names are blocked in the category "
        "given. Updated every blocking.list_update_interval and by `hearth lists update`.",
        example=[{"id": "stevenblack", "url": "https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts",
                  "format": "auto", "category": "ads", "enabled": True, "mandatory": False}])
    feed: FeedConfig = option(FeedConfig(), "A signed provider feed of categorised lists (see docs/feed-format.md).")
    provider: ProviderLinkConfig = option(ProviderLinkConfig(), "A list provider this appliance enrols with: its "
                                          "signed feed, polled often, and where harmful-site reports are forwarded "
                                          "(see docs/provider.md).")
    querylog: QueryLogConfig = option(QueryLogConfig(), "The query log kept in the store.")
    clients: ClientsConfig = option(ClientsConfig(), "How devices are recognised: MAC addresses from the neighbour "
                                    "table, DHCP leases and a router's dnsmasq (--add-mac).")
    web: WebConfig = option(WebConfig(), "The web UI process.")

    def __post_init__(self) -> None:
        ids = [entry.id for entry in self.lists]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"lists: id {dup[0]!r} is used twice")
        if self.provider.url and self.feed.url:
            raise ValueError("feed.url and provider.url: choose one (a provider serves its own feed)")

    @property
    def control_socket(self) -> str:
        return os.path.join(self.data_dir, "hearth.sock")


def config_path(cli_path: Optional[str]) -> Optional[str]:
    """The file to read: ``--config``, else ``$HEARTH_CONFIG``, else None (embedded defaults)."""
    return cli_path or os.environ.get(ENV_VAR) or None


def load_for_command(cli_path: Optional[str], command: str) -> tuple[Config, Optional[str]]:
    """(config, path) for a `hearth COMMAND`: on a broken file, print every problem and exit 2."""
    import sys

    path = config_path(cli_path)
    try:
        return load_config(path), path
    except ConfigError as exc:
        print(f"hearth {command}: the configuration has errors:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def load_config(path: Optional[str]) -> Config:
    """Read and check ``path`` (None: embedded defaults). Raises ConfigError."""
    return load_section_file(Config, path)


REFERENCE_INTRO = """
Every key of Hearth's configuration file, generated from the code that reads it
(`hearth config reference`). Hearth reads one YAML file, given with `--config FILE`
(or `-c`) or the `HEARTH_CONFIG` environment variable; without one it runs on the
defaults below. Unknown keys are errors. `hearth check-config FILE` checks a file
and names the line and key of every problem. Durations accept seconds or `30s`,
`5m`, `6h`, `1d`. Send SIGHUP to the daemon to reload the file without dropping queries.
"""

EXAMPLE_HEADER = """
Hearth configuration: every option, at its default. Generated by `hearth config example`.
Full reference: docs/config-reference.md.
"""


def reference() -> str:
    return reference_markdown(Config, "Hearth configuration reference", REFERENCE_INTRO)


def example() -> str:
    return example_yaml(Config, EXAMPLE_HEADER)


__all__ = ["Config", "ConfigError", "load_config", "load_for_command", "config_path", "reference", "example"]
