"""The command line: `python -m server {serve,migrate,token,...}`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

from server.config import Settings, SettingsError, load_settings, with_secrets
from server.matching.cli import add_match_command
from server.sessionlog.cli import add_report_command
from server.signin.cli import add_operator_command

Command = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.event_loop import loop_factory
    from server.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    admin_from_env = settings.admin_key is not None
    settings, created = with_secrets(settings)
    if settings.data_dir.is_dir():
        settings.data_dir.chmod(0o700)  # keys and (by default) the database live here
    app = create_app(settings)
    print(f"Pairwise listening on http://{settings.host}:{settings.port}", flush=True)
    key_file = settings.data_dir / "admin_key"
    if "admin_key" in created:
        # Printed once, when it is made: logs are kept longer and read by more people.
        print(f"Admin key (new, saved in {key_file}): {settings.admin_key}", flush=True)
    elif not admin_from_env:
        print(f"Admin key: in {key_file}", flush=True)
    # run_app turns SIGINT and SIGTERM into a graceful shutdown that runs cleanup and returns.
    web.run_app(
        app,
        loop=loop_factory(settings.event_loop)(),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
    )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from server.store import Database
    from server.store.migrate import current_revision, migrate

    async def run() -> str | None:
        database = Database(settings.effective_database_url)
        try:
            await migrate(database)
            return await current_revision(database)
        finally:
            await database.close()

    print(f"database at revision {asyncio.run(run())}")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from server.api.tokens import TokenRequest, join_url
    from server.auth import TokenIssuer

    settings, _ = with_secrets(settings)
    try:
        request = TokenRequest(
            room=args.room,
            identity=args.identity,
            name=args.name or args.identity,
            role=args.role,
            ttl_seconds=args.ttl,
        )
    except ValidationError as exc:
        from server.api.http import describe_validation_error

        print(f"error: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    assert settings.secret_key is not None
    issuer = TokenIssuer(settings.secret_key, settings.token_ttl_seconds)
    token, claims = issuer.issue(
        request.room, request.identity, request.name, request.role, request.ttl_seconds
    )
    print(
        json.dumps(
            {
                "token": token,
                "join_url": join_url(settings.base_url, token),
                "expires_at": claims.expires_at,
            },
            indent=2,
        )
    )
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="python -m server", description="Pairwise: a server for online mentoring programs."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Command] = {}

    serve = sub.add_parser("serve", help="run the server (HTTP, Socket.IO, SFU)")
    serve.add_argument("--host", help="address to listen on (PAIRWISE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (PAIRWISE_PORT)")
    serve.add_argument("--data-dir", help="folder for the SQLite file and keys (PAIRWISE_DATA_DIR)")
    serve.add_argument("--database-url", help="SQLAlchemy URL (PAIRWISE_DATABASE_URL)")
    serve.add_argument("--redis-url", help="Redis URL for several nodes (PAIRWISE_REDIS_URL)")
    serve.add_argument("--log-format", choices=["text", "json"], help="PAIRWISE_LOG_FORMAT")
    commands["serve"] = _serve

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--data-dir")
    mig.add_argument("--database-url")
    commands["migrate"] = _migrate

    tok = sub.add_parser("token", help="print a join token and its link")
    tok.add_argument("--room", required=True)
    tok.add_argument("--identity", required=True)
    tok.add_argument("--name")
    tok.add_argument("--role", required=True, choices=["mentor", "mentee", "observer", "operator"])
    tok.add_argument("--ttl", type=int, help="seconds until the token expires")
    tok.add_argument("--data-dir")
    commands["token"] = _token
    add_match_command(sub, commands)
    add_report_command(sub, commands)
    add_operator_command(sub, commands)
    return parser, commands


SETTING_FLAGS = ("host", "port", "data_dir", "database_url", "redis_url", "log_format")


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    overrides = {flag: getattr(args, flag, None) for flag in SETTING_FLAGS}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return commands[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
