"""The `hearth` commands for web UI accounts: `hearth admin create`, `hearth token create`.

``hearth admin create USER --password-stdin`` does headless what the first-run wizard does (the
wizard is then skipped: Hearth has an admin); with ``--reset`` it sets an existing user's password
(a forgotten password). ``hearth token create USER`` prints a new API token for
``Authorization: Bearer …``; only its hash is stored. Both are recorded in the audit log as "cli".
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .cli_policy import CommandError, _command
from .store import ROLES


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise CommandError("give the password on standard input with --password-stdin "
                           "(e.g. `printf '%s' \"$PW\" | hearth admin create NAME --password-stdin`)")
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    from webui.auth import PASSWORD_MIN

    if len(password) < PASSWORD_MIN:
        raise CommandError(f"the password needs at least {PASSWORD_MIN} characters")
    return password


def admin_create(args: argparse.Namespace, ctx: Any, store: Any) -> bool:
    from werkzeug.security import generate_password_hash

    password = _read_password(args)
    existing = store.get_user(args.user)
    if existing is not None:
        if not args.reset:
            raise CommandError(f"user {existing.name!r} already exists (add --reset to set its password)")
        user = store.update_user(existing.name, password_hash=generate_password_hash(password), role=args.role)
        store.add_audit("cli", "user.password", user.name)
        ctx.say(f"password of {user.role} {user.name!r} changed")
        return False
    user = store.add_user(args.user, generate_password_hash(password), args.role or "admin")
    store.add_audit("cli", "user.add", user.name, None, {"name": user.name, "role": user.role})
    ctx.say(f"{user.role} {user.name!r} created: sign in at http://{ctx.config.web.listen}/")
    return False


def token_create(args: argparse.Namespace, ctx: Any, store: Any) -> bool:
    import hashlib
    import secrets

    user = store.get_user(args.user)
    if user is None:
        raise CommandError(f"unknown user {args.user!r} (create it with `hearth admin create`)")
    token = "hth_" + secrets.token_urlsafe(32)
    tok = store.add_api_token(user.name, hashlib.sha256(token.encode()).hexdigest(), args.label or "cli")
    store.add_audit("cli", "token.create", user.name, None, {"id": tok.id, "label": tok.label})
    ctx.say(token)
    return False


def add_web_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `admin` and `token` to the `hearth` parser's sub-commands."""
    gp = sub.add_parser("admin", help="web UI accounts (headless setup)", description="web UI accounts",
                        parents=[common])
    subs = gp.add_subparsers(dest="admin_command", metavar="COMMAND")
    subs.required = True
    p = subs.add_parser("create", help="create a web UI user (the first one replaces the setup wizard)",
                        description="create a web UI user; the password is read from standard input",
                        parents=[common])
    p.add_argument("user", metavar="USER")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--role", choices=ROLES, help="admin (changes; the default) or viewer (read only)")
    p.add_argument("--reset", action="store_true", help="the user exists: set its password")
    p.set_defaults(func=_command("admin create", admin_create))

    gp = sub.add_parser("token", help="API tokens for /api/v1", description="API tokens", parents=[common])
    subs = gp.add_subparsers(dest="token_command", metavar="COMMAND")
    subs.required = True
    p = subs.add_parser("create", help="print a new API token for USER (Authorization: Bearer …)",
                        description="print a new API token for USER; it is shown once", parents=[common])
    p.add_argument("user", metavar="USER")
    p.add_argument("--label", metavar="TEXT", help="what the token is for")
    p.set_defaults(func=_command("token create", token_create))

