"""``/healthz``: is the UI up, and can it reach the DNS engine?"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from resolver import __version__
from resolver.control import call

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    config = current_app.config["HEARTH"]
    try:
        engine = call(config.control_socket, "ping", timeout=1.0).get("ok", False)
    except OSError:
        engine = False
    return jsonify(status="ok", version=__version__, engine=engine)
