"""The appliance settings the web UI's setup wizard keeps in the store (upstreams, time zone), layered on the
configuration file: a value the file sets always wins."""
from __future__ import annotations

import logging
from typing import Optional

from resolver.service.config import Config

log = logging.getLogger("hearth.engine")

STORE_SETTINGS = ("upstreams", "timezone")


def file_upstreams(config: Config) -> Optional[list[str]]:
    """The upstreams the configuration file sets, when they override the web UI's choice (anything but
    the built-in default, see with_settings); None when the wizard's or settings page's choice applies."""
    if list(config.dns.upstreams) == list(Config().dns.upstreams):
        return None
    return list(config.dns.upstreams)


def with_settings(config: Config, settings: dict) -> Config:
    """``config`` with the setup wizard's choices (kept in the store) where the file leaves the default:
    a value written in the configuration file always wins. Unusable values are ignored (logged)."""
    from dataclasses import replace

    defaults = Config()
    upstreams = settings.get("upstreams")
    if upstreams and file_upstreams(config) is None:
        try:
            from resolver.engine.upstream import parse_upstream

            for url in upstreams:
                parse_upstream(url)
            config = replace(config, dns=replace(config.dns, upstreams=list(upstreams)))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring the upstreams chosen in the web UI: %s", exc)
    tz = settings.get("timezone")
    if tz and config.timezone == defaults.timezone:
        try:
            from resolver.service.config import _check_timezone

            config = replace(config, timezone=_check_timezone(tz))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring the time zone chosen in the web UI: %s", exc)
    return config
