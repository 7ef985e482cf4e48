"""The `hearth` commands for web UI accounts: `hearth admin create`, `hearth admin setup-code`,
`hearth token create`.

``hearth admin create USER --password-stdin`` does headless what the first-run wizard does (the
wizard is then skipped: Hearth has an admin); with ``--reset`` it sets an existing user's password
(a forgotten password). ``hearth token create USER`` prints a new API token for
``Authorization: Bearer …``; only its hash is stored. Both are recorded in the audit log as "cli".
``hearth admin setup-code`` prints the one-time code the setup wizard asks for (see webui.setupcode).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from resolver.cli.policy import CommandError, _command
from resolver.store.protocol import ROLES


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
    if user.role == "admin":
        from webui import setupcode

        setupcode.retire(ctx.config.data_dir)        # set up: the wizard's code is no longer needed
    ctx.say(f"{user.role} {user.name!r} created: sign in at http://{ctx.config.web.listen}/")
    return False


def _set_up(data_dir: str) -> bool:
    """Whether a web UI user exists. The store is only read, never made: as root (the installer)
    this must not leave a database the service's user cannot write."""
    import os
    import sqlite3

    path = os.path.join(data_dir, "hearth.db")
    if not os.path.exists(path):
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM users").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return False
        raise CommandError(f"cannot read the store {path}: {exc}") from None


def setup_code(args: argparse.Namespace) -> int:
    """Print the one-time code the setup wizard asks for (made when there is none yet)."""
    from webui import setupcode

    from resolver.cli.policy import _load_config

    config = _load_config(args, "admin setup-code")
    data_dir = args.data_dir or config.data_dir
    try:
        code = setupcode.read_code(data_dir)
        if code is None:
            if _set_up(data_dir):
                print("hearth admin setup-code: Hearth is already set up: sign in to the web UI (a forgotten "
                      "password: hearth admin create NAME --password-stdin --reset)", file=sys.stderr)
                return 1
            code = setupcode.ensure_code(data_dir)
    except (OSError, CommandError) as exc:
        print(f"hearth admin setup-code: {exc}", file=sys.stderr)
        return 1
    print(code)
    return 0


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
    p = subs.add_parser("setup-code", help="print the one-time code the setup wizard asks for",
                        description="print the one-time code the web UI's setup wizard asks for before the first "
                        "admin exists (made when missing; kept in data_dir/setup-code, mode 0600)",
                        parents=[common])
    p.add_argument("--data-dir", metavar="DIR", help="the data folder (default: data_dir of the configuration)")
    p.set_defaults(func=setup_code)

    gp = sub.add_parser("token", help="API tokens for /api/v1", description="API tokens", parents=[common])
    subs = gp.add_subparsers(dest="token_command", metavar="COMMAND")
    subs.required = True
    p = subs.add_parser("create", help="print a new API token for USER (Authorization: Bearer …)",
                        description="print a new API token for USER; it is shown once", parents=[common])
    p.add_argument("user", metavar="USER")
    p.add_argument("--label", metavar="TEXT", help="what the token is for")
    p.set_defaults(func=_command("token create", token_create))

