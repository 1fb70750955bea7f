"""The enforced store's share of `Store`'s surface (``contains``, ``count``, ``referrers``,
``get(load=)``, ``with_options``) on every backend: each answers what the unenforced store
answers, filtered by a reference of what the principal may read."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import netabase
from netabase._portal import TrioPortal
from netabase.backends import Put, WriteBatch

from .test_enforced_view import (
    FOLDERS,
    GRANTS,
    MODELS,
    NOTES,
    SPACES,
    Folder,
    Note,
    Reference,
    Space,
    seed_notes,
)

KEYS = {"Space": SPACES, "Folder": FOLDERS, "Note": NOTES}
BY_NAME: dict[str, type] = {"Space": Space, "Folder": Folder, "Note": Note}


def test_enforced_reads_match_the_unenforced_ones_filtered(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=MODELS))
        try:
            db: netabase.Database = held.value
            portal.run(_seed, db)

            @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
            @given(grants=GRANTS)
            def check(grants: list[Any]) -> None:
                portal.run(_check_reads, db, grants)

            check()
        finally:
            held.close()
    finally:
        portal.stop()


async def _seed(db: netabase.Database) -> None:
    await db.permissions.add_member("team", "p")
    await db.store(Space).insert_many([Space("s1"), Space("s2")])
    await db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1"), Folder("f3", "s2")])
    await db.store(Note).insert_many(seed_notes(False))


async def _check_reads(db: netabase.Database, grants: list[Any]) -> None:
    for holder, (model, key), role in grants:
        await db.permissions.grant(holder, BY_NAME[model], key, role)
    reference = Reference(grants, seed_notes(False))
    view = db.as_principal("p")
    try:
        for name, model in BY_NAME.items():
            plain: netabase.Store[Any] = db.store(model)
            guarded: netabase.GuardedStore[Any] = view.store(model).with_options(timeout=30)
            readable = [k for k in KEYS[name] if reference.readable((name, k))]
            for key in KEYS[name]:
                expected = await plain.contains(key) and key in readable
                assert await guarded.contains(key) == expected, (name, key)
            assert await guarded.count() == len(readable), name
            assert [r.id async for r in guarded.scan()] == readable
        for folder in FOLDERS:
            everyone = await db.store(Folder).referrers(folder)
            readable_refs = [r for r in everyone if reference.readable((r.model, r.key))]
            assert await view.store(Folder).referrers(folder) == readable_refs
            only = await view.store(Folder).referrers(folder, Note, "see_also")
            assert only == [r for r in readable_refs if r.field == "see_also"]
        for note in seed_notes(False):
            if not reference.readable(("Note", note.id)):
                with pytest.raises(netabase.PermissionDenied):
                    await view.store(Note).get(note.id, load=["folder", "see_also"])
                continue
            loaded = await view.store(Note).get(note.id, load=["folder", "see_also"])
            assert loaded is not None and loaded.record == note
            for field in ("folder", "see_also"):
                target = getattr(note, field)
                wanted = None
                if target is not None and reference.readable(("Folder", target)):
                    wanted = await db.store(Folder).get(target)
                assert loaded[field] == wanted, (note.id, field)
    finally:
        for holder, (model, key), _ in grants:
            await db.permissions.revoke(holder, BY_NAME[model], key)


async def test_enforced_reads_check_their_arguments_first() -> None:
    async with netabase.open("memory://", models=MODELS) as db:
        notes = db.as_principal("p").store(Note)
        with pytest.raises(netabase.ValidationError, match="load="):
            await notes.get("n1", load=["author"])
        with pytest.raises(netabase.ValidationError, match="timeout"):
            notes.with_options(timeout=-1)
        with pytest.raises(netabase.ValidationError, match="limit"):
            notes.scan(limit=-1)
        with pytest.raises(netabase.ValidationError, match="field"):
            await notes.referrers("n1", field="nope")
        assert notes.model is Note


async def test_a_loaded_corrupt_record_is_none_unless_readable() -> None:
    async with netabase.open("memory://", models=MODELS) as db:
        await db.store(Space).insert(Space("s1"))
        await db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1")])
        await db.store(Note).insert(Note("n1", "f1", see_also="f2"))
        info = db._runtime.actor_for(Folder).info
        corrupt = WriteBatch((Put(info.space, info.encode_key("f2"), b"\xc1 not msgpack"),))
        await db._runtime.backend.apply([corrupt])
        await db.permissions.grant("p", Folder, "f1", "read")
        notes = db.as_principal("p").store(Note)
        loaded = await notes.get("n1", load=["folder", "see_also"])
        assert loaded is not None and loaded["see_also"] is None  # as if it were missing
        assert loaded["folder"] == Folder("f1", "s1")
        folders = db.as_principal("p").store(Folder)
        assert not await folders.contains("f2") and await folders.count() == 1
        await db.permissions.grant("p", Folder, "f2", "read")
        with pytest.raises(netabase.CorruptRecord):
            await notes.get("n1", load=["see_also"])
        assert await folders.contains("f2") and await folders.count() == 2
