"""Red team against "a programme manager never holds a participant's sign-in link"
(merged from `glue`; docs/signin.md). The link is mailed to the account's address, and a
manager may change that address: PATCH the participant's email to one the manager reads,
ask for a link (mailed "to the person"), and sign in as them: their home mints a member's
join token for the pair, which reads the pair's private chat, which no operator below
admin may. The chat digest (excerpts of unread chat, and the reply address that posts as
the member) follows the changed address too.

The rule: only an admin changes a participant's sign-in address, through the account
(403 admin_only) or an import row (the row's error); a manager gives a new person one."""

from __future__ import annotations

from tests.signin.conftest import SignInServer, mailbox, make_server, server  # noqa: F401
from tests.signin.test_participant_links import _browsers, _cohort

INBOX = "mo-private@example.org"  # an address the manager reads


async def test_a_manager_cannot_redirect_a_participants_link_to_themself(
    server: SignInServer,  # noqa: F811
) -> None:
    made = await _cohort(server)
    ada, pair = made["ada"], made["pair"]
    people = await _browsers(server)
    manager = people["manager"]
    try:
        status, changed = await manager.call(
            "PATCH", f"/api/v1/accounts/participants/{ada['id']}", {"email": INBOX}
        )
        if status == 200:
            status, _ = await manager.call(
                "POST", f"/api/v1/accounts/participants/{ada['id']}/link", {"send": True}
            )
            assert status == 201
            (mail,) = await server.mailbox.wait_for(1)
            if mail["To"] != INBOX:
                return  # the link went to Ada (or to her old address) after all
            _, secret = server.mailbox.link_in(mail)
            thief = server.browser()
            try:
                done = await thief.confirm(secret)
                status, token = await thief.call("POST", f"/api/v1/home/pairs/{pair['id']}/join")
                assert "token" not in (token or {}), ("the manager holds Ada's join token", done)
            finally:
                await thief.close()
        else:
            assert (status, changed["error"]["code"]) == (403, "admin_only"), changed
        # The import is the other way to give a person an address: the row is refused.
        row = {"identity": "ada", "name": "Ada", "role": "mentee", "timezone": "UTC"}
        status, report = await manager.call(
            "POST",
            "/api/v1/console/participants/import",
            {"format": "rows", "rows": [{"row": 2, "fields": {**row, "email": INBOX}}]},
        )
        assert status == 200 and report["errors"] == 1, report
        assert "only an admin" in report["rows"][0]["error"], report
        # A new person's address is the manager's to give; Ada's stays hers.
        new = {"identity": "di", "name": "Di", "role": "mentee", "timezone": "UTC"}
        status, report = await manager.call(
            "POST",
            "/api/v1/console/participants/import",
            {"format": "rows", "rows": [{"row": 2, "fields": {**new, "email": "di@example.org"}}]},
        )
        assert status == 200 and report["errors"] == 0, report
        status, _ = await manager.call(
            "POST", f"/api/v1/accounts/participants/{ada['id']}/link", {"send": True}
        )
        assert status == 201
        (mail,) = await server.mailbox.wait_for(1)
        assert mail["To"] == "ada@example.org", mail["To"]
        # An admin may change it (they may copy the link anyway).
        status, changed = await people["admin"].call(
            "PATCH", f"/api/v1/accounts/participants/{ada['id']}", {"email": "ada2@example.org"}
        )
        assert status == 200 and changed["email"] == "ada2@example.org", changed
    finally:
        for browser in people.values():
            await browser.close()


async def test_reactivating_does_not_undo_an_earlier_removal(
    server: SignInServer,  # noqa: F811
) -> None:
    """A manager removes Ada from her pair's room (say, for her conduct). Weeks later an
    admin deactivates her account and reactivates it (she asked for her other pairs back):
    her home's Join must still be refused for the room she was removed from."""
    made = await _cohort(server)
    ada, pair = made["ada"], made["pair"]
    people = await _browsers(server)
    try:
        status, _ = await people["manager"].call(
            "DELETE", f"/api/v1/rooms/{pair['room']}/participants/ada"
        )
        assert status == 200
        join = f"/api/v1/home/pairs/{pair['id']}/join"
        status, refused = await people["participant"].call("POST", join)
        assert (status, refused["error"]["code"]) == (403, "removed"), refused
        account = f"/api/v1/accounts/participants/{ada['id']}"
        for active in (False, True):
            status, changed = await people["admin"].call("PATCH", account, {"active": active})
            assert status == 200 and changed["active"] is active, changed
        again = await server.signed_in("ada@example.org")
        people["again"] = again
        status, answer = await again.call("POST", join)
        assert status == 403, ("Ada is back in the room she was removed from", answer)
    finally:
        for browser in people.values():
            await browser.close()
