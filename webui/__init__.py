"""Hearth's web UI: a Flask app factory that only wires blueprints together.

Areas (one blueprint each): ``auth`` (login, logout, first-run wizard), ``admin`` (the parents'
console), ``api`` (JSON under /api/v1), ``blockpage`` (public, no login: the block page, ask for
access, report a harmful site), ``health`` and ``metrics`` (on ``web.metrics_listen`` when set).
Views reach the store through :class:`resolver.store.Store` only.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Optional

from flask import Flask

from resolver.config import Config

log = logging.getLogger("hearth.web")


def _base_app(config: Config) -> Flask:
    from . import core, i18n

    app = Flask(__name__)
    app.config["HEARTH"] = config
    app.config.update(
        SECRET_KEY=core.secret_key(config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.web.secure_cookies,
        SESSION_COOKIE_NAME="hearth_session",
        PERMANENT_SESSION_LIFETIME=_dt.timedelta(hours=12),
        WTF_CSRF_CHECK_DEFAULT=False,        # checked in core.before_request (skipped for API tokens)
        WTF_CSRF_TIME_LIMIT=None,            # valid for the session's life
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
    )
    core.init_app(app)
    i18n.init_app(app)
    return app


def create_app(config: Optional[Config] = None) -> Flask:
    app = _base_app(config or Config())
    from .admin import bp as admin_bp
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .blockpage import bp as blockpage_bp
    from .health import bp as health_bp
    from .metrics import bp as metrics_bp

    app.register_blueprint(health_bp)
    if not app.config["HEARTH"].web.metrics_listen:
        app.register_blueprint(metrics_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(blockpage_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    return app


def create_blockpage_app(config: Optional[Config] = None) -> Flask:
    """The app on ``web.block_page_listen``: only the public pages; any other path shows the block
    page for the site the browser asked for (the Host header), since with blocking.mode page every
    blocked name points here."""
    app = _base_app(config or Config())
    from .blockpage import bp as blockpage_bp, catch_all

    app.register_blueprint(blockpage_bp)
    app.add_url_rule("/", "catch_all", catch_all)
    app.add_url_rule("/<path:path>", "catch_all_path", catch_all)
    return app


def create_metrics_app(config: Optional[Config] = None) -> Flask:
    """The app on ``web.metrics_listen``: /metrics and /healthz only."""
    app = Flask(__name__)
    app.config["HEARTH"] = config or Config()
    from .health import bp as health_bp
    from .metrics import bp as metrics_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    return app


def _serve_beside(name: str, app: Flask, listen: str, fallback: str) -> None:
    """Serve ``app`` on ``listen`` in a thread beside the UI; a failure to bind is logged, not fatal."""
    import waitress

    from resolver.dnsconfig import parse_listen

    host, port = parse_listen(listen)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=2, ident="hearth")
    except OSError as exc:
        log.error("%s: cannot listen on %s (%s); %s", name, listen, exc, fallback)
        return
    log.info("%s on http://%s/", name, listen)
    threading.Thread(target=server.run, name=name.replace(" ", "-"), daemon=True).start()


def serve(config: Config) -> int:
    """Run the UI under waitress (a production WSGI server) on ``web.listen``, and the block page on
    ``web.block_page_listen`` and /metrics on ``web.metrics_listen`` when set."""
    import waitress

    from resolver.dnsconfig import parse_listen

    host, port = parse_listen(config.web.listen)
    if config.web.block_page_listen:
        _serve_beside("block page", create_blockpage_app(config), config.web.block_page_listen,
                      f"it stays at /blocked on {config.web.listen}")
    if config.web.metrics_listen:
        _serve_beside("metrics", create_metrics_app(config), config.web.metrics_listen, "no /metrics")
    app = create_app(config)
    announce_setup_code(app)
    waitress.serve(app, host=host, port=port, threads=4, ident="hearth")
    return 0


def announce_setup_code(app: Flask) -> None:
    """Before the first admin exists: make the one-time setup code and write it to the log, which only
    the person running the machine reads (journalctl -u hearth, the container's log)."""
    from . import core, setupcode

    with app.app_context():
        if core.store().count_users():
            return
        code = setupcode.ensure_code(core.config().data_dir)
    log.warning("Hearth is not set up yet: open the web UI (%s) and enter the setup code %s "
                "(also shown by `hearth admin setup-code`)", app.config["HEARTH"].web.listen, code)
