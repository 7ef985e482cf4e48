"""`hearth provider …`: the list administrators' service (run it, enrol organisations, make API tokens)."""
from __future__ import annotations

import argparse
import logging
import sys


def _load(args: argparse.Namespace):
    from provider.config import ConfigError, load_provider_config

    try:
        return load_provider_config(args.config)
    except ConfigError as exc:
        print(f"hearth provider {args.provider_command}: the configuration has errors:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _database(config):
    from provider.db import Database

    return Database(config.database_url)


def cmd_provider_run(args: argparse.Namespace) -> int:
    config = _load(args)
    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    from provider.app import serve

    try:
        return serve(config)
    except OSError as exc:
        print(f"hearth provider run: cannot listen on {config.web.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def cmd_provider_org_add(args: argparse.Namespace) -> int:
    from provider.accounts import AccountError, add_organisation

    db = _database(_load(args))
    try:
        with db.session() as s:
            org, token = add_organisation(s, args.name)
            name = org.name
    except AccountError as exc:
        print(f"hearth provider org add: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(f"enrolment token for {name}: appliances configure provider.token with it", file=sys.stderr)
    return 0


def cmd_provider_token_create(args: argparse.Namespace) -> int:
    from provider.accounts import AccountError, create_api_token

    db = _database(_load(args))
    try:
        with db.session() as s:
            user, token = create_api_token(s, args.user, args.role)
            name, role = user.name, user.role
    except AccountError as exc:
        print(f"hearth provider token create: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(f"API token for {name} ({role}): send it as Authorization: Bearer TOKEN", file=sys.stderr)
    return 0


def cmd_provider_token_revoke(args: argparse.Namespace) -> int:
    from provider.accounts import AccountError, revoke_api_tokens

    db = _database(_load(args))
    try:
        with db.session() as s:
            n = revoke_api_tokens(s, args.user)
    except AccountError as exc:
        print(f"hearth provider token revoke: {exc}", file=sys.stderr)
        return 2
    print(f"{n} token(s) of {args.user} revoked")
    return 0


def add_provider_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from provider.config import ROLES

    pp = sub.add_parser("provider", help="the list administrators' service: reports in, review, signed feed out")
    psub = pp.add_subparsers(dest="provider_command", metavar="COMMAND")
    psub.required = True
    p = psub.add_parser("run", help="serve the provider's API, console and feed", parents=[common])
    p.set_defaults(func=cmd_provider_run)
    org = psub.add_parser("org", help="organisations (whose appliances enrol)")
    org_sub = org.add_subparsers(dest="org_command", metavar="COMMAND")
    org_sub.required = True
    p = org_sub.add_parser("add", help="add an organisation (if new) and print a new enrolment token",
                           parents=[common])
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_provider_org_add)
    tok = psub.add_parser("token", help="API tokens")
    tok_sub = tok.add_subparsers(dest="token_command", metavar="COMMAND")
    tok_sub.required = True
    p = tok_sub.add_parser("create", help="print a new API token for a user, creating the user if needed",
                           parents=[common])
    p.add_argument("--user", required=True, metavar="NAME")
    p.add_argument("--role", required=True, choices=ROLES)
    p.set_defaults(func=cmd_provider_token_create)
    p = tok_sub.add_parser("revoke", help="revoke every API token of a user", parents=[common])
    p.add_argument("--user", required=True, metavar="NAME")
    p.set_defaults(func=cmd_provider_token_revoke)
