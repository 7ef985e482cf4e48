"""The OpenAPI 3 document of the provider's JSON API (served at /api/v1/openapi.json)."""
from __future__ import annotations

from resolver import __version__

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_USER = [{"userToken": []}]
_APPLIANCE = [{"applianceToken": []}]


def _json(schema: dict, description: str = "ok") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict:
    return {str(c): _ERR for c in codes}


STATUS = {"enum": ["new", "approved", "rejected", "deferred"]}
ROLE = {"enum": ["admin", "reviewer", "publisher", "auditor"]}
KIND = {"enum": ["report", "unblock"], "description": "report: a harmful site to block; unblock: a false positive "
                                                      "an appliance's admin asks to unblock"}


def document() -> dict:
    obj, arr, s, i = "object", "array", {"type": "string"}, {"type": "integer"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Hearth provider API", "version": __version__,
                 "description": "Reports in from the fleet, review, signed feed out. People use `hpu_` tokens "
                                "(roles admin, reviewer, publisher, auditor); appliances their `hpa_` token."},
        "components": {
            "securitySchemes": {"userToken": {"type": "http", "scheme": "bearer"},
                                "applianceToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": obj, "properties": {"error": s}},
                "ReportGroup": {"type": obj, "properties": {
                    "id": i, "kind": KIND, "domain": s,
                    "registrable": {"type": "string", "description": "registrable domain (Public Suffix List): "
                                                                     "bad.example for a.bad.example"},
                    "same_registrable": {"type": "integer", "description": "names reported or asked to unblock "
                                                                          "under that registrable domain, this "
                                                                          "one included"},
                    "status": {"enum": ["new", "approved", "rejected", "deferred"]},
                    "category": s, "reports": i, "appliances": i, "organisations": i,
                    "first_seen": {"type": "number"}, "last_seen": {"type": "number"},
                    "notes": {"type": arr, "items": s}, "listed_in": {"type": arr, "items": s},
                    "suggested": {"type": obj, "additionalProperties": i}, "reason": s}},
                "Decision": {"type": obj, "required": ["action"], "properties": {
                    "action": {"enum": ["approve", "reject", "defer"]},
                    "category": {"type": "string", "description": "approve a report: the category it is published "
                                                                  "in (not needed for an unblock request)"},
                    "reason": {"type": "string", "description": "required to reject; the appliance's admin sees "
                                                                "it"}}},
                "RegistrableGroup": {"type": obj, "properties": {
                    "registrable": s, "reports": i, "appliances": i, "organisations": i,
                    "first_seen": {"type": "number"}, "last_seen": {"type": "number"},
                    "domains": {"type": arr, "items": {"type": obj, "properties": {"id": i, "domain": s,
                                                                                   "status": STATUS}}}}},
                "UnblockRequest": {"type": obj, "required": ["id", "domain", "time"], "properties": {
                    "id": {"type": "integer", "description": "the appliance's own request number (idempotency)"},
                    "domain": s, "note": {"type": "string", "maxLength": 500}, "lang": s,
                    "time": {"type": "number"}}},
                "UnblockDecision": {"type": obj, "properties": {
                    "id": {"type": "integer", "description": "the appliance's request number"}, "domain": s,
                    "status": STATUS, "reason": {"type": "string", "nullable": True},
                    "decided_at": {"type": "number", "nullable": True}}},
                "Appliance": {"type": obj, "properties": {
                    "id": s, "organisation": s, "hearth_version": s, "feed_version": {"type": "integer",
                                                                                      "nullable": True},
                    "entries": {"type": "integer", "nullable": True}, "last_seen": {"type": "number"},
                    "last_error": {"type": "string", "nullable": True}, "behind": {"type": "boolean"}}},
                "Order": {"type": obj, "required": ["authority", "reference", "category", "domains"], "properties": {
                    "authority": s, "reference": s, "deadline": s, "category": s,
                    "domains": {"oneOf": [{"type": arr, "items": s}, {"type": "string",
                                                                       "description": "one name a line, or CSV"}]}}},
                "Report": {"type": obj, "required": ["id", "domain", "time"], "properties": {
                    "id": {"type": "integer", "description": "the appliance's own report number (idempotency)"},
                    "domain": s, "category": s, "note": {"type": "string", "maxLength": 500}, "lang": s,
                    "time": {"type": "number"}}},
            }},
        "paths": {
            "/api/v1/reports": {
                "get": {"summary": "Reports and unblock requests grouped by domain (the review queue)",
                        "security": _USER,
                        "parameters": [{"name": "status", "in": "query", "schema": STATUS},
                                       {"name": "kind", "in": "query", "schema": KIND},
                                       {"name": "registrable", "in": "query", "schema": s,
                                        "description": "only the names under this registrable domain"}],
                        "responses": {"200": _json({"type": arr, "items": _ref("ReportGroup")}), **_errors(400, 401)}},
                "post": {"summary": "An appliance forwards reports (at most 100 a request)", "security": _APPLIANCE,
                         "requestBody": _body({"type": obj, "properties": {"reports": {"type": arr,
                                                                                       "items": _ref("Report")}}}),
                         "responses": {"200": _json({"type": obj, "properties": {"accepted": {"type": arr,
                                                                                              "items": i},
                                                                                 "new": i}}),
                                       **_errors(400, 401, 429)}}},
            "/api/v1/reports/by-registrable": {"get": {
                "summary": "Report groups gathered under their registrable domain, most reported first",
                "security": _USER, "parameters": [{"name": "status", "in": "query", "schema": STATUS},
                                                  {"name": "kind", "in": "query", "schema": KIND}],
                "responses": {"200": _json({"type": arr, "items": _ref("RegistrableGroup")}), **_errors(400, 401)}}},
            "/api/v1/unblocks": {
                "post": {"summary": "An appliance forwards its admin's unblock requests (same queue, kind unblock; "
                                    "at most 100 a request, counted with reports for the hourly limit)",
                         "security": _APPLIANCE,
                         "requestBody": _body({"type": obj, "properties": {"requests": {
                             "type": arr, "items": _ref("UnblockRequest")}}}),
                         "responses": {"200": _json({"type": obj, "properties": {"accepted": {"type": arr,
                                                                                              "items": i},
                                                                                 "new": i}}),
                                       **_errors(400, 401, 429)}},
                "get": {"summary": "What became of this appliance's unblock requests (also in the check-in answer)",
                        "security": _APPLIANCE,
                        "responses": {"200": _json({"type": arr, "items": _ref("UnblockDecision")}),
                                      **_errors(401)}}},
            "/api/v1/reports/decisions": {"post": {
                "summary": "The same decision on several report groups (bulk; reviewer, admin). Each is decided on "
                           "its own: a refused one is listed in errors and leaves the others decided",
                "security": _USER,
                "requestBody": _body({"allOf": [_ref("Decision"), {"type": obj, "required": ["ids"], "properties": {
                    "ids": {"type": arr, "items": i, "minItems": 1, "maxItems": 500}}}]}),
                "responses": {"200": _json({"type": obj, "properties": {
                    "decided": {"type": arr, "items": _ref("ReportGroup")},
                    "errors": {"type": arr, "items": {"type": obj, "properties": {"id": i, "error": s}}}}}),
                    **_errors(400, 401, 403)}}},
            "/api/v1/users": {"get": {"summary": "Users, their roles and number of live API tokens", "security": _USER,
                                      "responses": {"200": _json({"type": arr, "items": {
                                          "type": obj, "properties": {"name": s, "role": ROLE, "tokens": i,
                                                                      "created": {"type": "number"}}}}),
                                                    **_errors(401)}}},
            "/api/v1/users/{name}/role": {"post": {
                "summary": "Change a user's role (admin; the last admin keeps the role). New users and tokens: "
                           "`hearth provider token create`", "security": _USER,
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": s}],
                "requestBody": _body({"type": obj, "required": ["role"], "properties": {"role": ROLE}}),
                "responses": {"200": _json({"type": obj, "properties": {"name": s, "role": ROLE}}),
                              **_errors(400, 401, 403, 404)}}},
            "/api/v1/reports/{id}": {"get": {"summary": "One report group (detail=1: every report's time, "
                                                        "language, category and note, the other names under its "
                                                        "registrable domain, its history)", "security": _USER,
                                             "parameters": [{"name": "id", "in": "path", "required": True,
                                                             "schema": i},
                                                            {"name": "detail", "in": "query",
                                                             "schema": {"type": "boolean"}}],
                                             "responses": {"200": _json(_ref("ReportGroup")), **_errors(401, 404)}}},
            "/api/v1/reports/{id}/decision": {"post": {
                "summary": "Approve (a report: into a category; an unblock request: into the allow list), reject "
                           "(with a reason) or defer (reviewer, admin)",
                "security": _USER, "parameters": [{"name": "id", "in": "path", "required": True, "schema": i}],
                "requestBody": _body(_ref("Decision")),
                "responses": {"200": _json(_ref("ReportGroup")), **_errors(400, 401, 403, 404)}}},
            "/api/v1/publish": {"post": {"summary": "Build and sign the next feed version from the curated lists "
                                                    "and the mirrors, downloaded now (publisher, admin)",
                                         "security": _USER,
                                         "responses": {"200": _json({"type": obj, "properties": {
                                             "version": i, "lists": i, "entries": i,
                                             "mirrors": {"type": arr, "items": {"type": obj}}}}),
                                             **_errors(401, 403, 409)}}},
            "/api/v1/mirrors": {"get": {
                "summary": "The mirrored upstream lists (mirrors: in provider.yaml): last download, error, entries",
                "security": _USER,
                "responses": {"200": _json({"type": arr, "items": {"type": obj, "properties": {
                    "id": s, "url": s, "category": s, "mandatory": {"type": "boolean"},
                    "enabled": {"type": "boolean"}, "entries": {"type": "integer", "nullable": True}, "format": s,
                    "sha256": {"type": "string", "nullable": True},
                    "last_attempt": {"type": "number", "nullable": True},
                    "last_success": {"type": "number", "nullable": True},
                    "error": {"type": "string", "nullable": True}}}}), **_errors(401)}}},
            "/api/v1/appliances": {"get": {"summary": "The fleet", "security": _USER,
                                           "responses": {"200": _json({"type": arr, "items": _ref("Appliance")}),
                                                         **_errors(401)}}},
            "/api/v1/orders": {
                "post": {"summary": "Enter an authority's order (admin)", "security": _USER,
                         "requestBody": _body(_ref("Order")),
                         "responses": {"201": _json({"type": obj, "properties": {"id": i}}),
                                       **_errors(400, 401, 403)}},
                "get": {"summary": "Orders, with the version that published each", "security": _USER,
                        "responses": {"200": _json({"type": arr, "items": {"type": obj}}), **_errors(401)}}},
            "/api/v1/audit": {"get": {"summary": "The audit log, newest first", "security": _USER,
                                      "parameters": [{"name": "actor", "in": "query", "schema": s},
                                                     {"name": "action", "in": "query", "schema": s,
                                                      "description": "prefix, e.g. report. or user.role"}],
                                      "responses": {"200": _json({"type": arr, "items": {"type": obj}}),
                                                    **_errors(401)}}},
            "/api/v1/enrol": {"post": {
                "summary": "An appliance registers with its organisation's enrolment token",
                "requestBody": _body({"type": obj, "required": ["token", "appliance_id"], "properties": {
                    "token": s, "appliance_id": s, "hearth_version": s}}),
                "responses": {"201": _json({"type": obj, "properties": {"appliance_id": s, "token": s,
                                                                        "public_key": s, "feed_url": s}}),
                              **_errors(400, 401)}}},
            "/api/v1/checkin": {"post": {
                "summary": "An appliance says how it is", "security": _APPLIANCE,
                "requestBody": _body({"type": obj, "properties": {
                    "hearth_version": s, "feed_version": i, "entries": i, "last_error": s,
                    "unblocks": {"type": "boolean", "description": "true: answer with the decisions on this "
                                                                   "appliance's unblock requests"},
                    "report_decisions": {"type": "boolean", "description": "true: answer with the decisions on "
                                                                           "the reports it forwarded"}}}),
                "responses": {"200": _json({"type": obj, "properties": {
                    "ok": {"type": "boolean"}, "unblocks": {"type": arr, "items": _ref("UnblockDecision")},
                    "reports": {"type": arr, "description": "decided reports (with report_decisions): category "
                                                            "when approved, reason when rejected or deferred",
                                "items": _ref("UnblockDecision")}}}),
                    **_errors(400, 401)}}},
            "/feed/manifest.json": {"get": {"summary": "The signed manifest (ETag, If-None-Match: 304)",
                                            "responses": {"200": {"description": "manifest"},
                                                          "304": {"description": "unchanged"}}}},
        },
    }
