"""Where a room lives (for clients) and which nodes are alive (for operators)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from server.api.access import Access
from server.api.http import RouteTable, json_response
from server.cluster.service import Cluster

routes = RouteTable()
CLUSTER = web.AppKey("cluster", Cluster)


class RoomNode(BaseModel):
    room: str
    node: str
    url: str
    moved: bool


class Node(BaseModel):
    name: str
    url: str
    rooms: int
    participants: int
    streams: int
    cpu_percent: float


class Nodes(BaseModel):
    nodes: list[Node]


@routes.route(
    "GET",
    "/api/v1/rooms/{room}/node",
    summary="The node that holds a room (placing it if new)",
    response=RoomNode,
    access=Access.ROOM,
    errors=(401, 403, 503),
    tags=("cluster",),
)
async def room_node(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    placement = await request.app[CLUSTER].node_for(room)
    return json_response(
        RoomNode(room=room, node=placement.node, url=placement.url, moved=placement.moved)
    )


@routes.route(
    "GET",
    "/api/v1/nodes",
    summary="Live nodes and their load",
    response=Nodes,
    access=Access.ADMIN,
    tags=("cluster",),
)
async def nodes(request: web.Request) -> web.Response:
    live = await request.app[CLUSTER].live_nodes()
    return json_response(
        Nodes(
            nodes=[
                Node(
                    name=n.name,
                    url=n.url,
                    rooms=n.rooms,
                    participants=n.participants,
                    streams=n.streams,
                    cpu_percent=n.cpu_percent,
                )
                for n in live
            ]
        )
    )
