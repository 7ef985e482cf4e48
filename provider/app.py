"""The provider's Flask app factory and its web server (waitress)."""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, send_from_directory, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from resolver import __version__

from .config import ProviderConfig, check_listen
from .console import init_console
from .db import Database
from .publish import ensure_key, feed_dir, public_key

log = logging.getLogger("hearth.provider")

feed_bp = Blueprint("feed", __name__, url_prefix="/feed")


@feed_bp.get("/feed.pub")
def feed_pub() -> Any:
    return Response(public_key(current_app.extensions["provider.config"].data_dir) + "\n", mimetype="text/plain")


@feed_bp.get("/<path:name>")
def feed_file(name: str) -> Any:
    """The published feed: manifest.json, its signature and the lists, with ETag / Last-Modified (a poll
    that finds nothing new is a 304)."""
    return send_from_directory(feed_dir(current_app.extensions["provider.config"].data_dir), name, max_age=0)


def create_app(config: ProviderConfig, db: Optional[Database] = None) -> Flask:
    """The app, with the database migrated and the feed's key pair made on first start."""
    from .api import bp as api_bp

    os.makedirs(config.data_dir, exist_ok=True)
    ensure_key(config.data_dir)
    app = Flask("provider")
    app.config["MAX_CONTENT_LENGTH"] = config.web.max_body
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["provider.config"] = config
    app.extensions["provider.db"] = db or Database(config.database_url)
    app.register_blueprint(api_bp)
    app.register_blueprint(feed_bp)
    init_console(app, config.data_dir)

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("console.queue"))

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"ok": True, "version": __version__})

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: Exception) -> Any:
        response = jsonify({"error": f"request body over {config.web.max_body} bytes"})
        response.status_code = 400
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        response = jsonify({"error": exc.description or exc.name})
        response.status_code = exc.code or 500
        return response

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
        return response

    return app


def serve(config: ProviderConfig) -> int:
    """Run the provider until stopped (SIGTERM / Ctrl-C)."""
    from waitress import serve as waitress_serve

    app = create_app(config)
    host, port = check_listen(config.web.listen)
    log.info("Hearth provider %s on http://%s:%d/ (database %s)", __version__, host, port,
             config.database_url.split("@")[-1])
    waitress_serve(app, host=host, port=port, threads=config.web.threads, ident="hearth-provider",
                   max_request_body_size=config.web.max_body * 16)  # Flask answers 400 before that
    return 0
