"""The console's blueprint (sign-in required for every page) and the helpers its views share."""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, flash, redirect, request

from .. import core
from ..errors import localise_error

bp = Blueprint("admin", __name__)
bp.before_request(core.require_login)


def done(target: str, message: Any = None) -> Any:
    if message:
        flash(str(message), "ok")
    return redirect(target)


def attempt(fn: Callable[[], Any], ok_message: Any, target: str) -> Any:
    """Run a change; a ValueError (the model's one-line message) is shown instead of a crash."""
    try:
        fn()
    except ValueError as exc:
        flash(localise_error(str(exc)), "error")
        return redirect(target)
    return done(target, ok_message)


def back(default: str) -> str:
    return core.safe_next(request.form.get("next"), default)
