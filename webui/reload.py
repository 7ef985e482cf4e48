"""The web UI's configuration reload (SIGHUP, as `systemctl reload` and `hearth run` send it).

Like the engine, the UI re-reads its configuration file: a good file is applied to the running apps
(a new ``web.listen``, ``data_dir`` or session secret restarts the process in place, same PID); a broken
file leaves the previous configuration in force and its problems are shown on every admin page and in
``/healthz`` until a reload with a good file.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any, Optional

from flask import Flask, current_app

from resolver.service.config import Config, ConfigError, load_config

log = logging.getLogger("hearth.web")

ERROR_KEY = "HEARTH_CONFIG_ERROR"


def init_app(app: Flask) -> None:
    """Let templates show the configuration file's error (``config_error``)."""
    app.config.setdefault(ERROR_KEY, None)

    @app.context_processor
    def _config_error() -> dict:
        return {"config_error": current_app.config.get(ERROR_KEY)}


def config_error(app: Optional[Flask] = None) -> Optional[str]:
    """The problems of the configuration file at the last failed reload, or None."""
    return (app or current_app).config.get(ERROR_KEY)


def _restart_keys(c: Config) -> tuple:
    """What only a new process can apply: sockets, the store's folder, the session key."""
    return (c.web.listen, c.web.block_page_listen, c.data_dir, c.web.session_secret_file)


class Reloader:
    """Re-reads ``config_file`` and applies it to ``apps`` (the UI, and the block page app when it runs)."""

    def __init__(self, apps: list[Flask], config: Config, config_file: Optional[str]):
        self.apps, self.config, self.config_file = apps, config, config_file
        self._lock = threading.Lock()

    def install(self) -> None:
        """Reload on SIGHUP (the work runs in a thread: the signal only starts it)."""
        signal.signal(signal.SIGHUP, lambda _sig, _frame: threading.Thread(
            target=self.reload, name="hearth-web-reload", daemon=True).start())

    def reload(self) -> bool:
        """Apply the file now; False (and the error shown) when it is broken."""
        with self._lock:
            try:
                new = load_config(self.config_file)
            except ConfigError as exc:
                self._set_error(f"{exc}")
                log.error("reload refused, the web UI keeps the running config:\n%s", exc)
                return False
            if _restart_keys(new) != _restart_keys(self.config):
                from resolver.engine.startup import preflight

                problems = [f.message for f in preflight(new, dns=False, web=True) if f.fatal]
                if problems:
                    self._set_error("\n".join(problems))
                    log.error("reload refused, the web UI keeps the running config: %s", "; ".join(problems))
                    return False
                log.info("web.listen, data_dir or the session secret changed: restarting the web UI in place")
                _restart_in_place()
            for app in self.apps:
                app.config["HEARTH"] = new
                app.config["SESSION_COOKIE_SECURE"] = new.web.secure_cookies
                app.config[ERROR_KEY] = None
            self.config = new
            logging.getLogger().setLevel(new.log_level.upper())
            log.info("configuration reloaded from %s", self.config_file or "embedded defaults")
            return True

    def _set_error(self, text: str) -> None:
        for app in self.apps:
            app.config[ERROR_KEY] = text


def _restart_in_place() -> None:
    """exec this same command again: the new process binds the new sockets (the supervisor keeps its pid)."""
    argv: Any = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv[1:]])
