"""`jetbridge tenants|users|api-keys`: identities administered from a shell on the platform's
host (database access is the credential). Every action is recorded on the audit bus."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from jetbridge.ops.identity.principal import Principal

Command = Callable[[argparse.Namespace], int]


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _shell_principal() -> Principal:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Principal(subject=f"cli:{who}", kind="platform", roles=frozenset({"admin"}))


def _platform() -> Any:
    from jetbridge.cli import _platform as build

    return build()


def _audit(platform: Any, action: str, resource: str) -> None:
    from jetbridge.ops.identity import audit

    audit.record(
        platform.backbone, _shell_principal(), action=action, resource=resource, origin="cli"
    )


def _password(args: argparse.Namespace) -> str:
    """From stdin (--password-stdin) or a prompt: never from the command line, which other
    users of the host can read."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("password: the two entries differ")
    return first


def cmd_tenants(args: argparse.Namespace) -> int:
    from jetbridge.ops.identity import store

    platform = _platform()
    with platform.engine.begin() as conn:
        if args.action == "create":
            if not args.id or not args.kind:
                raise ValueError("tenants create needs --id and --kind")
            made = store.create_tenant(
                conn, tenant_id=args.id, kind=args.kind, name=args.name or args.id
            )
            _print(made)
        else:
            _print(store.list_tenants(conn))
    if args.action == "create":
        _audit(platform, "tenants create", f"tenant:{args.id}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from jetbridge.ops.identity import store

    platform = _platform()
    if args.action == "list":
        with platform.engine.connect() as conn:
            _print(store.list_users(conn, tenant=None, all_tenants=True))
        return 0
    if not args.username:
        raise ValueError(f"users {args.action} needs a user name")
    with platform.engine.begin() as conn:
        if args.action == "create":
            roles = store.parse_roles(args.roles or "")
            made = store.create_user(
                conn, username=args.username, password=_password(args), roles=roles,
                tenant=args.tenant,
            )  # fmt: skip
        else:
            made = store.set_user_disabled(
                conn, username=args.username, disabled=args.action == "disable"
            )
    _print(made)
    _audit(platform, f"users {args.action}", f"user:{args.username}")
    return 0


def cmd_api_keys(args: argparse.Namespace) -> int:
    from jetbridge.ops.identity import store

    platform = _platform()
    if args.action == "list":
        with platform.engine.connect() as conn:
            _print(store.list_api_keys(conn, tenant=None, all_tenants=True))
        return 0
    with platform.engine.begin() as conn:
        if args.action == "create":
            if not args.name:
                raise ValueError("api-keys create needs --name")
            expires = time.time() + args.expires_days * 86400 if args.expires_days else None
            made = store.create_api_key(
                conn, name=args.name, roles=store.parse_roles(args.roles or ""),
                tenant=args.tenant, created_by=_shell_principal().subject, expires_at=expires,
            )  # fmt: skip
        else:
            if not args.key_id:
                raise ValueError("api-keys revoke needs the key id")
            made = store.revoke_api_key(conn, key_id=args.key_id)
    _print(made)
    _audit(platform, f"api-keys {args.action}", f"api-key:{made['key_id']}")
    return 0


def add_commands(sub: Any) -> None:
    tenants = sub.add_parser("tenants", help="list or create tenants (airlines, airports)")
    tenants.add_argument("action", choices=["list", "create"])
    tenants.add_argument("--id", help="IATA/ICAO code, e.g. LX or ZRH")
    tenants.add_argument("--kind", choices=["airline", "airport"])
    tenants.add_argument("--name")
    tenants.set_defaults(run=cmd_tenants)

    users = sub.add_parser("users", help="create, list, disable or enable users")
    users.add_argument("action", choices=["create", "list", "disable", "enable"])
    users.add_argument("username", nargs="?")
    users.add_argument("--roles", help="comma-separated: passenger,agent,operations,admin,service")
    users.add_argument("--tenant", help="the airline or airport the user works for")
    users.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    users.set_defaults(run=cmd_users)

    keys = sub.add_parser("api-keys", help="create, list or revoke API keys for machines")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("key_id", nargs="?")
    keys.add_argument("--name")
    keys.add_argument("--roles", help="comma-separated: agent,operations,admin,service")
    keys.add_argument("--tenant")
    keys.add_argument("--expires-days", type=int)
    keys.set_defaults(run=cmd_api_keys)
