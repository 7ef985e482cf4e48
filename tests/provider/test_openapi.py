"""The OpenAPI document describes every route of the provider's JSON API (and nothing that is not there)."""
from __future__ import annotations

import re

from provider.app import create_app
from provider.config import ProviderConfig
from provider.openapi import document


def test_every_api_route_is_documented(tmp_path):
    app = create_app(ProviderConfig(data_dir=str(tmp_path / "data")))
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in ("api.openapi", "api.version"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).replace("{group_id}", "{id}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((path, method.lower()))
    doc = document()
    documented = {(path, method) for path, item in doc["paths"].items() if path.startswith("/api/v1/")
                  for method in item}
    assert routes == documented
    for path, item in doc["paths"].items():
        for op in item.values():
            assert op["summary"] and op["responses"], path
    app.extensions["provider.db"].close()
