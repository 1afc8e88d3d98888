from pathlib import Path

from server.phone.pins import PinMatch, PinStore
from server.rooms.removals import RemovalStore
from server.store import Database
from server.store.schema import metadata, phone_participant_pins, phone_room_pins, removals


async def store(tmp_path: Path, digits: int = 6) -> PinStore:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'pins.db'}")
    async with database.begin() as conn:
        await conn.run_sync(
            lambda sync: metadata.create_all(
                sync, tables=[phone_room_pins, phone_participant_pins, removals]
            )
        )
    return PinStore(database, digits)


async def test_room_pin_is_created_once_and_resolves(tmp_path: Path) -> None:
    pins = await store(tmp_path)
    assert await pins.room_pin("r1") is None
    pin = await pins.ensure_room_pin("r1")
    assert len(pin) == 6 and pin.isdigit()
    assert await pins.ensure_room_pin("r1") == pin
    assert await pins.resolve(pin) == PinMatch("r1")
    assert await pins.resolve("not-digits") is None


async def test_personal_pin_names_the_caller_and_keeps_its_digits(tmp_path: Path) -> None:
    pins = await store(tmp_path)
    pin = await pins.participant_pin("r1", "maya", "Maya", "mentee")
    again = await pins.participant_pin("r1", "maya", "Maya K.", "mentee")
    assert again == pin
    assert await pins.resolve(pin) == PinMatch("r1", "maya", "Maya K.", "mentee")


async def test_pins_are_unique_across_rooms_and_people(tmp_path: Path) -> None:
    pins = await store(tmp_path, digits=2)  # 100 possible PINs: collisions are certain
    issued = [await pins.ensure_room_pin(f"room{i}") for i in range(30)]
    issued += [await pins.participant_pin("room0", f"p{i}", "P", "mentee") for i in range(30)]
    assert len(set(issued)) == 60


async def test_a_removal_refuses_the_personal_pin_until_a_new_one_is_issued(
    tmp_path: Path,
) -> None:
    pins = await store(tmp_path)
    pin = await pins.participant_pin("r1", "maya", "Maya", "mentee")
    await RemovalStore(pins._db).remove("r1", "maya")

    assert await pins.resolve(pin) == PinMatch("r1", "maya", "Maya", "mentee", removed=True)
    fresh = await pins.participant_pin("r1", "maya", "Maya", "mentee")
    assert fresh != pin
    assert await pins.resolve(pin) is None
    assert await pins.resolve(fresh) == PinMatch("r1", "maya", "Maya", "mentee")
