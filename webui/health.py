"""``/healthz``: is the UI up, and can it reach the DNS engine?"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from resolver import __version__
from resolver.service.control import call

from .reload import config_error

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    config = current_app.config["HEARTH"]
    try:
        engine = call(config.control_socket, "ping", timeout=1.0).get("ok", False)
    except OSError:
        engine = False
    out = {"status": "ok", "version": __version__, "engine": engine}
    error = config_error()
    if error:   # the last reload found the file broken: the UI runs on the previous configuration
        out["config_error"] = error
    return jsonify(out)
