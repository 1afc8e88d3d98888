"""`python -m server operator {add,list,deactivate}`: the first admin, before anyone can
sign in to the console (and operators' accounts from a shell at any time)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from server.config import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def _operator(args: argparse.Namespace, settings: Settings) -> int:
    from server.errors import PairwiseError
    from server.signin.accounts import AccountStore
    from server.signin.sessions import SessionStore
    from server.store import Database
    from server.store.migrate import migrate

    async def run() -> int:
        database = Database(settings.effective_database_url)
        try:
            await migrate(database)
            store = AccountStore(database)
            if args.action == "add":
                account = await store.create_operator(args.email, args.role, args.name or "")
                print(f"{account.email}\t{account.role}\tadded (id {account.id})")
            elif args.action == "list":
                for account in await store.list(operators=True):
                    state = "active" if account.active else "deactivated"
                    print(f"{account.id}\t{account.email}\t{account.role}\t{state}")
            else:
                found = await store.by_email(args.email)
                if found is None or not found.operator:
                    print(f"error: no operator {args.email}", file=sys.stderr)
                    return 1
                await store.set_active(found.id, False)
                ended = await SessionStore(database, 1, 1).revoke_all(found.id, time.time())
                print(f"{found.email}\tdeactivated ({ended} sessions ended)")
            return 0
        except PairwiseError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await database.close()

    return asyncio.run(run())


def add_operator_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], commands: dict[str, Command]
) -> None:
    operator = sub.add_parser("operator", help="add, list or deactivate operators")
    actions = operator.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an operator who signs in by email")
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=["admin", "manager", "viewer"])
    add.add_argument("--name")
    listing = actions.add_parser("list", help="list operators")
    deactivate = actions.add_parser("deactivate", help="deactivate an operator, ending sessions")
    deactivate.add_argument("--email", required=True)
    for action in (add, listing, deactivate):
        action.add_argument("--data-dir")
        action.add_argument("--database-url")
    commands["operator"] = _operator
