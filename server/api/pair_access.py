"""Who may see or write to one pair: the one finer check after `access.guard`, the same on
every pair route (the session log's, the meetings').

The guard admits a PAIR route's caller (an operator, or any member's token) and a MEMBER
route's (a member's token); the pair in the path then narrows it: operators see every pair,
a member only the pair of their token's room (`sessionlog.privacy.require_pair_access`),
and writes come from that pair's members only (`require_member`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from server.api.access import caller_of
from server.pairs.model import Pair
from server.pairs.store import PairStore
from server.sessionlog.privacy import Viewer, pair_fields, require_member, require_pair_access


def viewer_of(request: web.Request) -> Viewer:
    """The caller `access.guard` admitted, as a pair's log sees them: an operator (the admin
    key or an operator's session, named as the audit log names them) or a member."""
    caller = caller_of(request)
    if caller.token is None:
        return Viewer.admin(caller.label)
    return Viewer.member(caller.token.identity, caller.token.room)


async def pair_seen(request: web.Request, pairs: PairStore) -> tuple[Viewer, Pair]:
    """The path's `{pair_id}` pair and its viewer: an operator, or a member of that pair
    (Forbidden for a member of another)."""
    viewer = viewer_of(request)
    pair = await pairs.get(request.match_info["pair_id"])
    require_pair_access(viewer, pair)
    return viewer, pair


async def pair_written(request: web.Request, pairs: PairStore) -> tuple[Viewer, Pair]:
    """The path's `{pair_id}` pair and the member of it who writes to it (Forbidden for
    anyone else)."""
    viewer, pair = await pair_seen(request, pairs)
    require_member(viewer, pair)
    return viewer, pair


def pair_json(pair: Pair, viewer: Viewer | None = None) -> dict[str, Any]:
    """The pair as `viewer` may see it (no viewer: an operator's route), on every route
    that answers a pair (the session log's, matching's)."""
    fields = {**dataclasses.asdict(pair), "members": [dataclasses.asdict(m) for m in pair.members]}
    return pair_fields(viewer or Viewer.admin(), fields)
