"""Store, inspect and rotate Meta tokens in the vault (DESIGN.md R9).

    python -m services.meta_fetcher.token_admin put --account act_X --token-file FILE
        [--expires-at 2026-09-01T00:00:00Z | --expires-in-days 60 | --never-expires]
        [--token-type user|system_user] [--refresh-method fb_exchange_token|none]
    python -m services.meta_fetcher.token_admin put --account act_X --token-file -     # token on stdin
    python -m services.meta_fetcher.token_admin show --account act_X
    python -m services.meta_fetcher.token_admin rotate
    python -m services.meta_fetcher.token_admin delete --account act_X
    python -m services.meta_fetcher.token_admin genkey --kid k2026b

The token is read from a file or stdin, never from the command line (argv
shows in ``ps`` and shell history); an unrecognised argument is reported
without echoing it. Nothing this tool prints contains a token. Settings from
the environment: ``MONGODB_URI`` (required except for genkey), ``MONGODB_DB``
(default ``adfatigue``), ``TOKEN_KEYS``, ``TOKEN_ACTIVE_KEY``,
``META_TOKEN_REFRESH_BEFORE_S``; ``ADFATIGUE_OPERATOR`` names who runs it in the
audit log (default: the login name), where every command is recorded with the
account and its outcome (never the token).

Without an expiry, the running fetcher's refresher asks Meta's
``debug_token`` for it (META_GRAPH_API.md §5). ``rotate`` re-encrypts every
entry under ``TOKEN_ACTIVE_KEY`` (``TokenVault.rotate``); run it after
deploying the new key to every replica and before retiring the old one.
Exit status: 0 done, 1 failure (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import socket
import sys
from datetime import datetime, timedelta, timezone
from typing import Mapping, NoReturn, TextIO

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.common.account_ids import InvalidAccountId
from services.common.audit_log import COLLECTION as AUDIT_COLLECTION, AuditLog
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher.token_vault import Keyring, TokenVault, TokenVaultError, keyring_from_settings

MAX_TOKEN_BYTES = 4096


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors never echo argument values (one of them might be a token)."""

    hidden: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message:
            message = ("unrecognized arguments (not shown; tokens are read from --token-file FILE or "
                       "--token-file - for stdin, never from the command line)")
        for value in sorted(self.hidden, key=len, reverse=True):
            message = message.replace(value, "(not shown)")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m services.meta_fetcher.token_admin", allow_abbrev=False,
                description="Store, inspect and rotate Meta tokens in the encrypted vault.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    put = sub.add_parser("put", help="store a token for an ad account (replaces any)", allow_abbrev=False)
    put.add_argument("--account", required=True, help="act_<digits>")
    put.add_argument("--token-file", required=True, help="file holding the token, or - for stdin")
    when = put.add_mutually_exclusive_group()
    when.add_argument("--expires-at", help="ISO-8601 expiry, e.g. 2026-09-01T00:00:00Z")
    when.add_argument("--expires-in-days", type=float, help="expiry this many days from now")
    when.add_argument("--never-expires", action="store_true", help="a non-expiring system user token")
    put.add_argument("--token-type", default="user", choices=("user", "system_user", "page"))
    put.add_argument("--refresh-method", default=None, choices=("fb_exchange_token", "none"),
                     help="default: fb_exchange_token for user tokens, none otherwise")
    show = sub.add_parser("show", help="metadata of an account's entry (never the token)")
    show.add_argument("--account", required=True)
    delete = sub.add_parser("delete", help="forget an account's token (the fetcher falls back to META_ACCESS_TOKEN)")
    delete.add_argument("--account", required=True)
    sub.add_parser("rotate", help="re-encrypt every entry under TOKEN_ACTIVE_KEY")
    genkey = sub.add_parser("genkey", help="print a new TOKEN_KEYS entry kid:base64key")
    genkey.add_argument("--kid", required=True)
    return p


def read_token(path: str, stdin: TextIO) -> str:
    """The token in ``path`` (``-`` = stdin), stripped; ValueError when empty, multi-line or too long."""
    if path == "-":
        text = stdin.read(MAX_TOKEN_BYTES + 1)
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_TOKEN_BYTES + 1)
    if len(text) > MAX_TOKEN_BYTES:
        raise ValueError(f"the token file holds more than {MAX_TOKEN_BYTES} characters; expected one token")
    token = text.strip()
    if not token:
        raise ValueError("the token file is empty")
    if any(c.isspace() for c in token):
        raise ValueError("the token file holds more than one word; expected one token on one line")
    return token


def _expiry(args: argparse.Namespace) -> tuple[datetime | None, bool]:
    if args.never_expires:
        return None, True
    if args.expires_in_days is not None:
        if args.expires_in_days <= 0:
            raise ValueError("--expires-in-days must be > 0")
        return datetime.now(timezone.utc) + timedelta(days=args.expires_in_days), False
    if args.expires_at:
        try:
            value = datetime.fromisoformat(args.expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("--expires-at is not ISO-8601, e.g. 2026-09-01T00:00:00Z") from None
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)), False
    return None, False


async def _run(args: argparse.Namespace, env: Mapping[str, str], stdin: TextIO, out: TextIO) -> int:
    settings = FetcherSettings.from_env(env)  # SettingsError (a ValueError) names a bad variable
    settings.require("mongodb_uri", "the vault's MongoDB connection string")
    keyring = keyring_from_settings(settings.token_keys, settings.token_active_key)
    before = settings.token_refresh_before_s
    client = AsyncMongoClient(settings.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    db_name = settings.mongodb_db
    audit = AuditLog(client[db_name][AUDIT_COLLECTION], batch_window_s=0, service="token_admin")
    status = "UNKNOWN"
    try:
        await audit.start()
        status = await _command(args, client, db_name, keyring, before, stdin, out)
        return 0 if status == "OK" else 1
    except (TokenVaultError, ValueError, InvalidAccountId, OSError):
        status = "INVALID_ARGUMENT"
        raise
    except PyMongoError:
        status = "UNAVAILABLE"
        raise
    finally:
        try:  # who did what to which account's token (never the token)
            await audit.record(_operator(settings.operator), f"token_admin.{args.command}",
                               getattr(args, "account", "") or "", status)
            await audit.close(timeout_s=5)
        finally:
            await client.close()


def _operator(configured: str) -> str:
    """Who runs the tool, for the audit: ``configured`` (``ADFATIGUE_OPERATOR``) or the login name, with the host."""
    try:
        user = configured or getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def _command(args: argparse.Namespace, client, db_name: str, keyring, before: float, stdin: TextIO,
                   out: TextIO) -> str:
    """Run one vault command; returns its status name (OK, NOT_FOUND, ABORTED when rotate must run again)."""
    vault = TokenVault.from_client(client, db_name, keyring, refresh_before_s=before)
    if args.command == "put":
        expires_at, never = _expiry(args)
        token = read_token(args.token_file, stdin)
        method = args.refresh_method or ("fb_exchange_token" if args.token_type == "user" else "none")
        stored = await vault.put(args.account, token, expires_at=expires_at, never_expires=never,
                                 token_type=args.token_type, refresh_method=method)
        await vault.ensure_indexes()
        expiry = "never" if never else (expires_at.isoformat(timespec="seconds") if expires_at else
                                        "unknown (the fetcher will ask debug_token)")
        print(f"stored token for act_{stored.account_id}: generation {stored.generation}, key "
              f"{stored.key_id}, expires {expiry}", file=out)
    elif args.command == "show":
        meta = await vault.describe(args.account)
        if meta is None:
            print(f"no token stored for {args.account}", file=out)
            return "NOT_FOUND"
        for key in ("_id", "kid", "generation", "status", "invalid_reason", "invalid_since", "refresh_due_at",
                    "updated_at"):
            print(f"{key}: {meta.get(key)}", file=out)
    elif args.command == "delete":
        gone = await vault.delete(args.account)
        print(f"{'deleted' if gone else 'no token stored for'} {args.account}", file=out)
    elif args.command == "rotate":
        report = await vault.rotate()
        print(f"rotated {report.rotated}, already under {keyring.active}: {report.already_active}, "
              f"changed meanwhile (run again): {report.skipped_changed}", file=out)
        return "OK" if report.skipped_changed == 0 else "ABORTED"
    return "OK"


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, stdin: TextIO | None = None,
         stdout: TextIO | None = None) -> int:
    """Command-line entry point; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # every argument value (and any "--opt=value") is kept out of error messages
    _Parser.hidden = tuple(a.split("=", 1)[1] if a.startswith("-") and "=" in a else a
                           for a in argv if len(a) >= 3 and not (a.startswith("-") and "=" not in a))
    args = _parser().parse_args(argv)
    out = stdout or sys.stdout
    if args.command == "genkey":
        try:
            Keyring(keys={args.kid: b"\0" * 32}, active=args.kid)  # validates the key id
        except TokenVaultError as exc:
            print(f"token_admin: {exc}", file=sys.stderr)
            return 2
        print(f"{args.kid}:{Keyring.generate_key()}", file=out)
        return 0
    try:
        return asyncio.run(_run(args, os.environ if env is None else env, stdin or sys.stdin, out))
    except (TokenVaultError, ValueError, InvalidAccountId, OSError) as exc:
        print(f"token_admin: {exc}", file=sys.stderr)
        return 1
    except PyMongoError as exc:
        print(f"token_admin: MongoDB failed ({type(exc).__name__})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
