"""Red team: /me's per-pair unread count (and the chat digest, from the same query) kept
counting a pair's chat for a member an operator had removed from its room. The removed
person stays one of the pair's members, so their home went on telling them how much the
others said after the removal (and the digest mailed them the text)."""

from __future__ import annotations

from typing import Any

from tests.signin.conftest import mailbox, make_server  # noqa: F401 (fixtures)


async def test_a_removed_member_sees_no_count_of_what_was_said_after(
    make_server: Any,  # noqa: F811
    database_url: str,
) -> None:
    server = await make_server(database_url)
    await server.ada_paired_with_grace()
    chat = server.services.chat
    await chat.post("room-ada", "grace", "Grace", "before the removal", "g1")
    ada = await server.signed_in("ada@example.org")

    async def unread() -> int:
        status, home = await ada.call("GET", "/api/v1/home")
        assert status == 200, home
        [pair] = home["pairs"]
        return int(pair["unread"])

    assert await unread() == 1
    await server.admin("DELETE", "/api/v1/rooms/room-ada/participants/ada")
    await chat.post("room-ada", "grace", "Grace", "after the removal", "g2")
    await chat.post("room-ada", "grace", "Grace", "and more", "g3")
    assert await unread() == 1, "the count told a removed member of messages after removal"
    await ada.close()


async def test_a_member_reactivated_counts_again(
    make_server: Any,  # noqa: F811
    database_url: str,
) -> None:
    """Deactivating a participant removes them from their rooms; reactivating lifts that
    removal (their home's Join works again), and so the count counts again."""
    server = await make_server(database_url)
    account = await server.participant("ada", "ada@example.org", "Ada")
    await server.participant("grace", "grace@example.org", "Grace")
    members = [
        {"identity": "grace", "name": "Grace", "role": "mentor"},
        {"identity": "ada", "name": "Ada", "role": "mentee"},
    ]
    await server.admin("POST", "/api/v1/pairs", {"members": members, "room": "room-ada"})
    await server.admin("PATCH", f"/api/v1/accounts/participants/{account['id']}", {"active": False})
    await server.admin("PATCH", f"/api/v1/accounts/participants/{account['id']}", {"active": True})
    assert await server.services.removals.removed("room-ada", "ada")  # lifted, not deleted
    await server.services.chat.post("room-ada", "grace", "Grace", "welcome back", "g1")
    ada = await server.signed_in("ada@example.org")
    status, home = await ada.call("GET", "/api/v1/home")
    assert status == 200, home
    assert [p["unread"] for p in home["pairs"]] == [1]
    await ada.close()
