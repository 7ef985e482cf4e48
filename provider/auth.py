"""Who is asking: a user's API token (roles) or an appliance's own token, from ``Authorization: Bearer``."""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import current_app, g, jsonify, request

from .accounts import user_for_token
from .fleet import appliance_for_token

# what each role may do besides reading (every role, auditor included, may read)
CAN = {"decide": ("admin", "reviewer"), "publish": ("admin", "publisher"), "order": ("admin",), "users": ("admin",)}


def bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def error(status: int, message: str) -> Any:
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hearth-provider"'
    return response


def user_required(action: str = "read") -> Callable:
    """Needs a live user token; for ``action`` other than read, one of the roles in CAN[action]."""
    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            db = current_app.extensions["provider.db"]
            with db.session() as s:
                user = user_for_token(s, bearer())
                if user is None:
                    return error(401, "missing, wrong or revoked API token (Authorization: Bearer hpu_...)")
                g.user_name, g.user_role = user.name, user.role
            if action != "read" and g.user_role not in CAN[action]:
                return error(403, f"role {g.user_role} may not {action} (needs {' or '.join(CAN[action])})")
            return view(*args, **kwargs)
        return inner
    return wrap


def appliance_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def inner(*args: Any, **kwargs: Any) -> Any:
        db = current_app.extensions["provider.db"]
        with db.session() as s:
            app = appliance_for_token(s, bearer())
            if app is None:
                return error(401, "missing, wrong or revoked appliance token (enrol again)")
            g.appliance_id = app.id
        return view(*args, **kwargs)
    return inner
