"""The console's users page (list, change a role: admins only) and audit log page (every role may read)."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from . import accounts
from .auth import CAN
from .console_base import _db, bp, signed_in
from .models import ROLES


@bp.get("/users")
@signed_in()
def users_page() -> Any:
    with _db().session() as s:
        rows = accounts.list_users(s)
    return render_template("console/users.html", users=rows, roles=ROLES, can_change=g.user_role in CAN["users"])


@bp.post("/users/role")
@signed_in("users")
def users_role() -> Any:
    name, role = request.form.get("name", ""), request.form.get("role", "")
    try:
        with _db().session() as s:
            accounts.set_role(s, name, role, g.user_name)
        flash(_("Role of %(name)s: %(role)s.", name=name, role=role), "ok")
    except accounts.AccountError as exc:
        flash(str(exc), "error")
    except LookupError:
        abort(404)
    return redirect(url_for("console.users_page"))


@bp.get("/audit")
@signed_in()
def audit_page() -> Any:
    actor, action = request.args.get("actor", "").strip(), request.args.get("action", "").strip()
    with _db().session() as s:
        rows = accounts.audit_entries(s, actor or None, action or None, limit=500)
    return render_template("console/audit.html", entries=rows, actor=actor, action=action)
