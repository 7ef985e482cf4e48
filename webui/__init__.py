"""Hearth's web UI: a Flask app factory that only wires blueprints together."""
from __future__ import annotations

from typing import Optional

from flask import Flask

from resolver.config import Config


def create_app(config: Optional[Config] = None) -> Flask:
    app = Flask(__name__)
    app.config["HEARTH"] = config or Config()
    from .health import bp as health_bp

    app.register_blueprint(health_bp)
    return app


def serve(config: Config) -> int:
    """Run the UI under waitress (a production WSGI server) on ``web.listen``."""
    import waitress

    from resolver.dnsconfig import parse_listen

    host, port = parse_listen(config.web.listen)
    waitress.serve(create_app(config), host=host, port=port, threads=4, ident="hearth")
    return 0
