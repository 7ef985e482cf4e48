"""The OpenAPI 3 document of ``/api/v1``, built from the routes the API registers (so it cannot miss one)."""
from __future__ import annotations

import re
from typing import Any

from resolver import __version__

_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}

SCHEMAS: dict[str, dict] = {
    "Error": {"type": "object", "properties": {"error": _STR, "status": _INT}, "required": ["error", "status"]},
    "Device": {"type": "object", "properties": {
        "name": _STR, "identity": {"type": "string", "description": "IP address, network (CIDR) or MAC address"},
        "kind": {"type": "string", "enum": ["ip", "cidr", "mac"]}, "value": _STR, "profile": _STR,
        "hostname": _STR, "first_seen": _NUM, "last_seen": _NUM, "paused_until": {"type": "number", "nullable": True},
        "id": _INT}},
    "Profile": {"type": "object", "properties": {
        "name": _STR, "preset": _STR,
        "categories": {"type": "array", "items": _STR, "description": "blocked categories; [\"*\"] = all"},
        "services": {"type": "array", "items": _STR, "description": "blocked service ids (hearth services list)"},
        "safe_search": _BOOL, "youtube": {"type": "string", "enum": ["strict", "moderate", "off"]},
        "block_mode": {"type": "string", "enum": ["null", "nxdomain", "page"]}, "block": _STRS, "allow": _STRS,
        "bypass_prevention": _BOOL, "id": _INT, "updated": _NUM}},
    "Schedule": {"type": "object", "properties": {
        "profile": _STR, "name": _STR,
        "days": {"type": "array", "items": {"type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat",
                                                                       "sun"]}},
        "start": {"type": "string", "example": "21:00"}, "end": {"type": "string", "example": "07:00"},
        "action": {"type": "string", "enum": ["block_all", "block_categories", "block_services"]},
        "categories": _STRS, "services": _STRS, "enabled": _BOOL, "id": _INT}},
    "Pause": {"type": "object", "properties": {"minutes": {"type": "integer", "nullable": True}}},
    "Allow": {"type": "object", "properties": {"domain": _STR, "minutes": _INT}, "required": ["domain", "minutes"]},
    "Rule": {"type": "object", "properties": {"domain": _STR,
                                              "action": {"type": "string", "enum": ["allow", "block", "remove"]}},
             "required": ["domain", "action"]},
    "Decision": {"type": "object", "properties": {
        "decision": {"type": "string", "enum": ["30m", "day", "minutes", "always", "decline", "more"],
                     "description": "more: 15 more minutes of a used-up time budget (a block-page request)"},
        "minutes": {"type": "integer", "minimum": 1, "maximum": 527040,
                    "description": "for decision minutes: how long to allow (1 minute to a year)"},
        "domain": {"type": "string", "description": "what to allow instead of the asked name, e.g. *.example.com"}},
        "required": ["decision"]},
    "ListsUpdate": {"type": "object", "properties": {"offline": _BOOL}},
    "Budgets": {"type": "array", "items": {"type": "object", "properties": {
        "target": {"type": "string", "example": "roblox",
                   "description": "a service id, a category (games), all; or service:ID / category:NAME"},
        "minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "description": "a school day's minutes"},
        "weekend": {"type": "integer", "minimum": 0, "maximum": 1440,
                    "description": "Saturday's and Sunday's minutes (default: minutes)"},
        "days": {"type": "object", "example": {"fri": 90, "sat,sun": 150},
                 "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 1440},
                 "description": "weekdays with their own minutes: keys mon..sun, lists (sat,sun) or ranges "
                                "(mon-thu); the other days take minutes or weekend. A day given twice is "
                                "refused"},
        "reset": {"type": "string", "example": "00:00", "description": "when the budget day starts"}},
        "required": ["target", "minutes"]}},
    "BudgetMore": {"type": "object", "properties": {"target": _STR, "minutes": {"type": "integer", "minimum": 1,
                                                                                "maximum": 1440}},
                   "required": ["target"]},
}


def _path(flask_path: str) -> tuple[str, list[dict]]:
    params = []
    for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", flask_path):
        params.append({"name": name, "in": "path", "required": True, "schema": _INT if conv == "int" else _STR})
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", flask_path), params


def document(routes: list[dict]) -> dict:
    paths: dict[str, Any] = {}
    for r in routes:
        path, params = _path(r["path"])
        op: dict[str, Any] = {
            "summary": r["summary"], "operationId": r["endpoint"],
            "parameters": params + [{"name": q, "in": "query", "required": False, "schema": _STR} for q in r["query"]],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
                          "400": {"$ref": "#/components/responses/Error"},
                          "401": {"$ref": "#/components/responses/Error"},
                          "403": {"$ref": "#/components/responses/Error"},
                          "404": {"$ref": "#/components/responses/Error"}},
        }
        if r["public"]:
            op["security"] = []
        if r["body"]:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{r['body']}"}}}}
        paths.setdefault("/api/v1" + path, {})[r["method"]] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Hearth API", "version": __version__,
                 "description": "Everything the Hearth web UI does. Sign in with the UI's session (send the "
                                "X-CSRFToken header on changes) or a token from `hearth token create USER` "
                                "(Authorization: Bearer …). Viewers may read only (403 on changes)."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {"Error": {"description": "An error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "hearth_session"}},
        },
        "security": [{"bearer": []}, {"session": []}],
    }
