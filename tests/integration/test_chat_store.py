"""The chat store on SQLite and PostgreSQL: messages written together, each client_id
stored once, committed before `append` returns, and a broken connection replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.rooms.chat import ChatMessage, ChatStore
from server.store import Database
from server.store.migrate import migrate
from tests.support.services import fresh_postgres_database
from tests.support.waiting import eventually


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrate(database)
    yield database
    await database.close()


async def test_messages_sent_together_are_stored_once_per_client_id(database: Database) -> None:
    chat = ChatStore(database)
    # More than one statement's worth, arriving at once, with resends among them; the same
    # client_id from someone else is a different message.
    sends = [("ada", f"c{i % 50}") for i in range(2 * ChatStore.MAX_BATCH)] + [("bo", "c1")]
    results = await asyncio.gather(
        *(chat.append("room", who, who, f"{who} {cid}", cid) for who, cid in sends)
    )
    seen: dict[tuple[str, str], list[tuple[ChatMessage, bool]]] = {}
    for (who, cid), result in zip(sends, results, strict=True):
        seen.setdefault((who, cid), []).append(result)
    assert len(seen) == 51
    for (who, cid), versions in seen.items():
        assert {message.id for message, _ in versions} == {versions[0][0].id}
        assert {message.text for message, _ in versions} == {f"{who} {cid}"}
        assert [new for _, new in versions] == [True] + [False] * (len(versions) - 1)
    assert await chat.count("room") == 51


async def test_a_resend_returns_the_stored_message(database: Database) -> None:
    chat = ChatStore(database)
    first, new = await chat.append("room", "ada", "Ada", "hello", "c1")
    assert new
    again, new = await chat.append("room", "ada", "Ada", "hello, edited", "c1")
    assert (again, new) == (first, False)
    assert [m.text for m in await chat.history("room", 10)] == ["hello"]


async def test_an_appended_message_is_committed_when_append_returns(
    database: Database, database_url: str
) -> None:
    await ChatStore(database).append("room", "ada", "Ada", "hello", "c1")
    elsewhere = Database(database_url)  # another connection, as another process would have
    try:
        assert [m.text for m in await ChatStore(elsewhere).history("room", 10)] == ["hello"]
    finally:
        await elsewhere.close()


async def test_two_nodes_sending_one_client_id_store_it_once(
    database: Database, database_url: str
) -> None:
    other = Database(database_url)
    try:
        results = await asyncio.gather(
            *(
                ChatStore(db).append("room", "ada", "Ada", "hello", "c1")
                for db in (database, other, database, other)
            )
        )
        assert len({message.id for message, _ in results}) == 1
        assert sorted(new for _, new in results) == [False, False, False, True]
    finally:
        await other.close()


@pytest.mark.postgres
async def test_messages_are_stored_after_postgresql_ends_the_connection() -> None:
    async with fresh_postgres_database() as url:
        database = Database(url)
        try:
            await migrate(database)
            chat = ChatStore(database)
            await chat.append("room", "ada", "Ada", "before", "c1")
            # What a restart, or an idle timeout, does to the connection the store keeps.
            admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            # The next message comes later. Not at once: asyncpg may have read PostgreSQL's
            # FATAL and not yet the socket's end (measured: waiting until the server lists no
            # connection, 1 in 15 runs still found it between), and only the store's private
            # driver connection could tell when it has.
            await asyncio.sleep(0.5)
            message, new = await chat.append("room", "ada", "Ada", "after", "c2")
            assert new
            # A statement that fails leaves the next one working.
            with pytest.raises(asyncpg.UndefinedTableError):
                await database.write_returning("SELECT * FROM nowhere", [])
            await chat.append("room", "ada", "Ada", "later", "c3")
            assert [m.text for m in await chat.history("room", 10)] == ["before", "after", "later"]
        finally:
            await database.close()


@pytest.mark.postgres
async def test_mark_read_returns_the_marker_stored_when_another_call_stored_first() -> None:
    """Two first read markers for one person at once: the one whose insert loses returns
    the later marker the other stored. Before, it returned the id it was asked for (5),
    though 10 was stored and 5 never was."""
    async with fresh_postgres_database() as url:
        database = Database(url)
        other = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await migrate(database)
            async with other.transaction():  # stored, not yet committed: invisible meanwhile
                await other.execute(
                    "INSERT INTO chat_reads (room, identity, message_id) VALUES ('room', 'ada', 10)"
                )
                marking = asyncio.create_task(ChatStore(database).mark_read("room", "ada", 5))

                # Until mark_read's insert waits on this one's (same key), which PostgreSQL
                # shows only in pg_stat_activity: then commit.
                async def waiting_or_done() -> bool:
                    return marking.done() or bool(
                        await other.fetchval(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        )
                    )

                await eventually(waiting_or_done, interval=0.01, what="mark_read waiting on a lock")
            assert await marking == 10
            assert await ChatStore(database).read_markers("room") == {"ada": 10}
        finally:
            await other.close()
            await database.close()
