"""Hearth's web UI: a Flask app factory that only wires blueprints together.

Areas (one blueprint each): ``auth`` (login, logout, first-run wizard), ``admin`` (the parents'
console), ``api`` (JSON under /api/v1), ``blockpage`` (public, no login: the block page, ask for
access, report a harmful site), ``health`` and ``metrics`` (on ``web.metrics_listen`` when set).
Views reach the store through :class:`resolver.store.protocol.Store` only.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Optional

from flask import Flask

from resolver.service.config import Config

log = logging.getLogger("hearth.web")


def _base_app(config: Config) -> Flask:
    from . import core, i18n_setup, reload

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
    i18n_setup.init_app(app)
    reload.init_app(app)
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


def _serve_beside(name: str, app: Flask, listen: str, fallback: str) -> Optional[Flask]:
    """Serve ``app`` on ``listen`` in a thread beside the UI; a failure to bind is logged, not fatal.
    Returns the app when it serves (so a reload reaches it too)."""
    import waitress

    from resolver.engine.dnsconfig import parse_listen
    from resolver.engine.startup import bind_error

    host, port = parse_listen(listen)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=2, ident="hearth")
    except OSError as exc:
        log.error("%s: %s; %s", name, bind_error(host, port, "tcp", exc, service="web"), fallback)
        return None
    log.info("%s on http://%s/", name, listen)
    threading.Thread(target=server.run, name=name.replace(" ", "-"), daemon=True).start()
    return app


def serve(config: Config, config_file: Optional[str] = None) -> int:
    """Run the UI under waitress (a production WSGI server) on ``web.listen``, the block page on
    ``web.block_page_listen`` and /metrics on ``web.metrics_listen`` when set. SIGHUP re-reads
    ``config_file`` (see :mod:`webui.reload`)."""
    import sys

    import waitress

    from resolver.engine.dnsconfig import parse_listen
    from resolver.engine.startup import EXIT_STARTUP, bind_error

    from .reload import Reloader

    host, port = parse_listen(config.web.listen)
    app = create_app(config)
    apps = [app]
    try:
        server = waitress.create_server(app, host=host, port=port, threads=4, ident="hearth")
    except OSError as exc:
        print(f"hearth: {bind_error(host, port, 'tcp', exc, service='web')}", file=sys.stderr, flush=True)
        return EXIT_STARTUP
    if config.web.block_page_listen:
        served = _serve_beside("block page", create_blockpage_app(config), config.web.block_page_listen,
                               f"it stays at /blocked on {config.web.listen}")
        if served is not None:
            apps.append(served)
    if config.web.metrics_listen:
        served = _serve_beside("metrics", create_metrics_app(config), config.web.metrics_listen, "no /metrics")
        if served is not None:
            apps.append(served)
    Reloader(apps, config, config_file).install()
    announce_setup_code(app)
    server.print_listen("Serving on http://{}:{}")
    server.run()
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
