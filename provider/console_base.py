"""The console's blueprint, its database handle and the sign-in check its pages share (provider.console and
provider.console_people add the pages)."""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import Blueprint, abort, current_app, g, redirect, session, url_for
from sqlalchemy import select

from .auth import CAN
from .models import ApiToken, User

bp = Blueprint("console", __name__, url_prefix="/console")


def _db():
    return current_app.extensions["provider.db"]


def signed_in(action: str = "read") -> Callable:
    """A signed-in person (the session's token still live); for ``action`` other than read, a role of
    CAN[action] (else 403)."""
    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            h = session.get("token")
            user = None
            if h:
                with _db().session() as s:
                    row = s.execute(select(User).join(ApiToken, ApiToken.user_id == User.id)
                                    .where(ApiToken.token_hash == h, ApiToken.revoked.is_(None))).first()
                    user = row[0] if row else None
            if user is None:
                session.pop("token", None)
                return redirect(url_for("console.login"))
            g.user_name, g.user_role = user.name, user.role
            if action != "read" and user.role not in CAN[action]:
                abort(403)
            return view(*args, **kwargs)
        return inner
    return wrap
