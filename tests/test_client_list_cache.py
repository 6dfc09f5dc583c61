"""A practice's client list kept in memory: every process sees each write of a client at once.

Two stores on one database stand for two bridge processes; what one writes, the other lists on
its next read (the practice's ``clients_version`` moves on with every write)."""

from __future__ import annotations

from mautrix.types import UserID
from mautrix.util.async_db import Database

from bridge.directory import Client, DirectoryStore, Practice
from bridge.directory.store import KEEP_FOR_MANY


def _client(client_id: str, name: str, **fields: bool) -> Client:
    return Client(
        "p1", client_id, UserID(f"@{client_id}:x"), name, f"{client_id}@x", True, True, **fields
    )


async def test_a_kept_client_list_follows_every_write_of_any_process(
    two_processes: tuple[Database, Database],
) -> None:
    one, other = two_processes
    first, second = DirectoryStore(one), DirectoryStore(other)
    await first.upsert_practice(Practice("p1", "Practice", "pro", "UTC"))
    await first.upsert_client(_client("c1", "Alma"))
    await first.upsert_client(_client("c2", "Bea"))
    assert [c.name for c in await second.list_clients("p1")] == ["Alma", "Bea"]
    assert [c.name for c in await first.list_clients("p1")] == ["Alma", "Bea"]

    # Written by one process: renamed, removed, added; the other lists it on its next read.
    await first.upsert_client(_client("c1", "Cleo"))
    await first.upsert_client(_client("c2", "Bea", active=False))
    await first.upsert_client(_client("c3", "Ada"))
    listed = await second.list_clients("p1")
    assert [(c.client_id, c.name, c.active) for c in listed] == [
        ("c3", "Ada", True),
        ("c2", "Bea", False),
        ("c1", "Cleo", True),
    ]
    # Clients by id come from the kept list while it is current, and follow writes too.
    await first.upsert_client(_client("c3", "Ada Lovelace"))
    by_id = await second.get_clients("p1", ["c3", "c1", "c9"])
    assert {cid: c.name for cid, c in by_id.items()} == {"c3": "Ada Lovelace", "c1": "Cleo"}
    await second.list_clients("p1")
    await first.upsert_client(_client("c1", "Cleo Marsh"))
    assert (await second.get_clients("p1", ["c1"]))["c1"].name == "Cleo Marsh"
    # A caller changing its copy of the list does not change what the next caller gets.
    listed.clear()
    assert len(await second.list_clients("p1")) == 3
    assert await second.list_clients("nobody") == []


async def test_asked_for_many_clients_a_process_keeps_the_list_and_follows_writes(
    two_processes: tuple[Database, Database],
) -> None:
    """A page of a thousand chats names its clients: asked for that many at once, the store
    keeps the practice's list (one read), and still answers each write of another process."""
    one, other = two_processes
    first, second = DirectoryStore(one), DirectoryStore(other)
    await first.upsert_practice(Practice("p1", "Practice", "pro", "UTC"))
    ids = [f"c{i:03}" for i in range(KEEP_FOR_MANY + 1)]
    for cid in ids:
        await first.upsert_client(_client(cid, f"Client {cid}"))
    few = await second.get_clients("p1", ids[:3])
    assert sorted(few) == ids[:3]
    many = await second.get_clients("p1", [*ids, "nobody"])
    assert sorted(many) == ids and many["c007"].name == "Client c007"
    await first.upsert_client(_client("c007", "Renamed"))
    await first.upsert_client(_client("c999", "New"))
    again = await second.get_clients("p1", [*ids, "c999"])
    assert again["c007"].name == "Renamed" and again["c999"].name == "New"
    assert (await second.get_clients("p1", ["c007"]))["c007"].name == "Renamed"
    assert await second.get_clients("elsewhere", ids) == {}
