"""The enforced view (``db.as_principal(p).store(M)``) on every backend: what a rule means for a
record that does not exist yet, writes judged again when what they were judged on changes, and
errors that name only records the principal may read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netabase
from netabase._portal import TrioPortal
from netabase.actors._mailbox import Request
from netabase.backends import Put, WriteBatch


@netabase.condition("ev_is_author")
def is_author(principal: str, note: Note) -> bool:
    return note.author == principal


@netabase.condition("ev_unlocked")
def unlocked(principal: str, note: Note) -> bool:
    return not note.locked


@netabase.model(key="id")
@attrs.frozen
class Space:
    id: str


@netabase.model(key="id", parent="space")
@attrs.frozen
class Folder:
    id: str
    space: str = netabase.link(Space, on_delete="cascade")


@netabase.model(
    key="id",
    parent="folder",
    rules=[
        netabase.allow("write", when="ev_is_author"),
        netabase.require("write", when="ev_unlocked"),
    ],
)
@attrs.frozen
class Note:
    id: str
    folder: str = netabase.link(Folder, on_delete="cascade")
    author: str = ""
    locked: bool = False
    see_also: str | None = netabase.link(Folder, required=False, on_delete="set_null")


@netabase.model(key="id", parent="space")
@attrs.frozen
class Pin:
    id: str
    space: str = netabase.link(Space, on_delete="cascade")
    note: str | None = netabase.link(Note, required=False, on_delete="restrict")
    folder: str | None = netabase.link(Folder, required=False, on_delete="cascade")


MODELS = [Space, Folder, Note, Pin]


async def seed(db: netabase.Database) -> None:
    """s1 > f1, f2 and s2 > f3; mallory may write s1 and nothing in s2."""
    await db.store(Space).insert_many([Space("s1"), Space("s2")])
    await db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1"), Folder("f3", "s2")])
    await db.permissions.grant("mallory", Space, "s1", "write")


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[netabase.Database]:
    async with netabase.open(backend_url, models=MODELS) as database:
        await seed(database)
        yield database


class Door:
    """Holds the next request of ``kind`` (a name, or several) at a store actor's mailbox (the
    permission actor's with ``model`` None) until `open`: whatever runs meanwhile lands between
    two steps of the enforced view."""

    def __init__(
        self, db: netabase.Database, model: type | None, kind: str | set[str], times: int = 1
    ) -> None:
        runtime = db._runtime
        mailbox = (
            runtime.permission_actor.mailbox if model is None else runtime.actor_for(model).mailbox
        )
        self.kinds = {kind} if isinstance(kind, str) else kind
        self.left = times
        self.reached = trio.Event()
        self._opened = trio.Event()
        put_nowait, put = mailbox.put_nowait, mailbox.put

        def held_put_nowait(request: Request, now: float) -> None:
            if self._holds(request):
                raise trio.WouldBlock
            put_nowait(request, now)

        async def held_put(request: Request) -> None:
            if self._holds(request):
                self.left -= 1
                opened = self._opened
                self.reached.set()
                await opened.wait()
            await put(request)

        mailbox.put_nowait = held_put_nowait  # type: ignore[method-assign]
        mailbox.put = held_put  # type: ignore[method-assign]

    def _holds(self, request: Request) -> bool:
        return self.left > 0 and request.message.operation in self.kinds

    def open(self) -> None:
        opened, self._opened, self.reached = self._opened, trio.Event(), trio.Event()
        opened.set()


async def race(door: Door, guarded: Callable[[], Any], meanwhile: Callable[[], Any]) -> Any:
    """Run ``guarded`` with ``meanwhile`` done while its write is held; its result or error."""
    outcome: list[Any] = []

    async def run() -> None:
        try:
            outcome.append(await guarded())
        except netabase.NetabaseError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await door.reached.wait()
        await meanwhile()
        door.open()
    return outcome[0]


# -- what rules mean for records that do not exist yet ------------------------------------------


async def test_an_allow_rule_gives_no_place_to_create_a_record(db: netabase.Database) -> None:
    notes = db.store(Note)
    await notes.insert_many([Note("own", "f3", "mallory"), Note("other", "f3", "bob")])
    mallory = db.as_principal("mallory").store(Note)
    with pytest.raises(netabase.PermissionDenied, match="'mallory' may not 'write' Note key 'new'"):
        await mallory.insert(Note("new", "f3", "mallory"))  # her own, where she has no grant
    assert not await db.permissions.check_record("mallory", "write", Note("new", "f3", "mallory"))
    assert await db.store(Note).get("new") is None
    await mallory.insert(Note("own", "f3", "mallory", see_also="f1"))  # hers as stored: fine
    with pytest.raises(netabase.PermissionDenied):
        await mallory.insert(Note("other", "f3", "mallory"))  # bob's as stored
    with pytest.raises(netabase.PermissionDenied):
        await mallory.insert(Note("own", "f3", "mallory", locked=True))  # require: as written
    await mallory.insert(Note("own", "f2", "mallory"))  # moved where she has a grant
    with pytest.raises(netabase.PermissionDenied):
        await mallory.insert(Note("own", "f3", "mallory"))  # and not back: no grant there
    assert await notes.get_many(["own", "other"]) == [
        Note("own", "f2", "mallory"),
        Note("other", "f3", "bob"),
    ]
    assert await db.permissions.check_record("mallory", "write", Note("own", "f1", "mallory"))


# -- writes judged again when what they were judged on changes --------------------------------


async def test_an_insert_is_judged_again_when_the_key_is_created_meanwhile(
    db: netabase.Database,
) -> None:
    mallory = db.as_principal("mallory").store(Note)
    door = Door(db, Note, "insert")
    result = await race(
        door,
        lambda: mallory.insert(Note("x", "f1", "mallory")),
        lambda: db.store(Note).insert(Note("x", "f3", "admin")),  # where she may not write
    )
    assert isinstance(result, netabase.PermissionDenied)
    assert await db.store(Note).get("x") == Note("x", "f3", "admin")


async def test_a_removal_is_judged_again_when_the_record_moves_meanwhile(
    db: netabase.Database,
) -> None:
    await db.store(Note).insert(Note("m", "f1", "bob"))
    mallory = db.as_principal("mallory").store(Note)
    result = await race(
        Door(db, Note, "remove"),
        lambda: mallory.remove("m"),
        lambda: db.store(Note).insert(Note("m", "f3", "bob")),
    )
    assert isinstance(result, netabase.PermissionDenied)
    assert await db.store(Note).get("m") == Note("m", "f3", "bob")


async def test_a_write_is_judged_again_when_the_grant_goes_meanwhile(
    db: netabase.Database,
) -> None:
    mallory = db.as_principal("mallory").store(Note)
    result = await race(
        Door(db, Note, "insert"),
        lambda: mallory.insert(Note("y", "f1", "mallory")),
        lambda: db.permissions.revoke("mallory", Space, "s1"),
    )
    assert isinstance(result, netabase.PermissionDenied)
    assert await db.store(Note).get("y") is None


async def test_a_write_is_judged_again_when_its_parent_moves_meanwhile(
    db: netabase.Database,
) -> None:
    mallory = db.as_principal("mallory").store(Note)
    result = await race(
        Door(db, Note, "insert"),
        lambda: mallory.insert(Note("z", "f2", "mallory")),
        lambda: db.store(Folder).insert(Folder("f2", "s2")),  # f2 leaves her space
    )
    assert isinstance(result, netabase.PermissionDenied)
    assert await db.store(Note).get("z") is None


async def test_a_removal_is_judged_again_when_a_referrer_appears_meanwhile(
    db: netabase.Database,
) -> None:
    mallory = db.as_principal("mallory").store(Folder)
    late = Note("late", "f3", "bob", see_also="f1")  # set_null: removing f1 would rewrite it
    result = await race(
        Door(db, Folder, "remove"),
        lambda: mallory.remove("f1"),
        lambda: db.store(Note).insert(late),
    )
    assert isinstance(result, netabase.PermissionDenied)
    assert "Folder key 'f1'" in str(result) and "late" not in str(result)
    assert await db.store(Note).get("late") == late
    assert await db.store(Folder).get("f1") == Folder("f1", "s1")


async def test_a_read_is_judged_on_the_record_it_returns(db: netabase.Database) -> None:
    notes = db.store(Note)
    await notes.insert_many([Note("r", "f1", "draft"), Note("s", "f3", "secret")])
    mallory = db.as_principal("mallory").store(Note)
    result = await race(
        Door(db, Note, {"get", "get_many"}),
        lambda: mallory.get("r"),
        lambda: notes.insert(Note("r", "f3", "secret now")),  # moved where she cannot read
    )
    assert isinstance(result, netabase.PermissionDenied)
    page = []

    async def scan() -> None:
        page.extend([n async for n in mallory.scan()])

    await race(  # the page is read, then judged: "s" is moved out and cleaned up in between
        Door(db, None, {"check", "judge"}),
        scan,
        lambda: notes.insert(Note("s", "f1", "cleaned")),
    )
    assert all(n.author != "secret" for n in page)


async def test_a_write_whose_judgement_keeps_changing_gives_up(db: netabase.Database) -> None:
    mallory = db.as_principal("mallory").store(Note)
    door = Door(db, Note, "insert", times=8)
    outcome: list[BaseException] = []

    async def guarded() -> None:
        with pytest.raises(netabase.WriteConflict) as info:
            await mallory.insert(Note("w", "f1", "mallory"))
        outcome.append(info.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(guarded)
        for round in range(8):
            await door.reached.wait()
            await db.permissions.grant(f"someone{round}", Space, "s2", "read")  # a new revision
            door.open()
    assert outcome and outcome[0].model == "Note"  # type: ignore[attr-defined]
    assert await db.store(Note).get("w") is None
    await mallory.insert(Note("w", "f1", "mallory"))  # left alone, it goes through


# -- errors name only records the principal may read ------------------------------------------


async def test_a_restrict_refusal_counts_referrers_it_may_not_read(db: netabase.Database) -> None:
    await db.store(Note).insert(Note("n", "f1"))
    await db.store(Pin).insert_many([Pin("hidden", "s2", note="n"), Pin("shown", "s1", note="n")])
    mallory = db.as_principal("mallory")
    for store, key in ((mallory.store(Note), "n"), (mallory.store(Folder), "f1")):
        with pytest.raises(netabase.LinkViolation) as info:
            await store.remove(key)  # directly, and through the cascade from its folder
        assert str(info.value) == (
            f"{store._info.name} key {key!r}: cannot remove: still linked by Pin.note='shown' "
            "and 1 record you cannot read (on_delete=restrict)"
        )
        assert info.value.referrers == (("Pin", "note", "shown"),)
        assert "hidden" not in str(info.value)
    await db.store(Pin).remove("shown")
    with pytest.raises(netabase.LinkViolation, match=r"by 1 record you cannot read \(") as info:
        await mallory.store(Note).remove("n")
    assert info.value.referrers == ()
    await db.permissions.grant("mallory", Space, "s2", "read")
    with pytest.raises(netabase.LinkViolation, match=r"by Pin\.note='hidden' ") as info:
        await mallory.store(Note).remove("n")
    with pytest.raises(netabase.LinkViolation, match=r"Pin\.note='hidden'"):
        await db.store(Note).remove("n")  # unenforced: every referrer named, as before
    assert await db.store(Note).get("n") == Note("n", "f1")


async def test_a_refused_cascade_names_only_readable_records(db: netabase.Database) -> None:
    await db.store(Pin).insert(Pin("p", "s2", folder="f1"))  # removing f1 cascades into it
    await db.store(Note).insert(Note("q", "f3", see_also="f2"))  # removing f2 rewrites it
    folders = db.as_principal("mallory").store(Folder)
    for key in ("f1", "f2"):
        with pytest.raises(netabase.PermissionDenied) as info:
            await folders.remove(key)
        assert str(info.value) == (
            f"principal 'mallory' may not 'write' Folder key {key!r}: removing it would delete "
            "or rewrite a record 'mallory' may not read"
        )
        assert (info.value.model, info.value.key) == ("Folder", key)
    await db.permissions.grant("mallory", Space, "s2", "read")
    with pytest.raises(netabase.PermissionDenied, match=r"may not 'write' Pin key 'p'$"):
        await folders.remove("f1")
    with pytest.raises(netabase.PermissionDenied, match=r"may not 'write' Note key 'q'$"):
        await folders.remove("f2")
    assert await db.store(Folder).count() == 3


async def test_a_link_to_an_unreadable_record_fails_like_one_to_a_missing_record(
    db: netabase.Database,
) -> None:
    mallory = db.as_principal("mallory").store(Note)
    errors = []
    for target in ("f3", "nowhere"):  # f3 exists, in a space she cannot read
        with pytest.raises(netabase.LinkViolation) as info:
            await mallory.insert(Note("x", "f1", see_also=target))
        errors.append(info.value)
    hidden, missing = errors
    assert str(hidden) == str(missing).replace("nowhere", "f3")
    assert (hidden.model, hidden.key, hidden.field, hidden.missing) == (
        "Note",
        "x",
        "see_also",
        ("f3",),
    )
    assert type(hidden) is type(missing)
    assert await db.store(Note).get("x") is None
    with pytest.raises(netabase.PermissionDenied):  # no write there: refused before any link
        await mallory.insert(Note("x", "f3", see_also="nowhere"))
    await db.store(Note).insert(Note("kept", "f1", see_also="f3"))
    await mallory.insert(Note("kept", "f1", "new text", see_also="f3"))  # not newly linked
    await db.permissions.grant("mallory", Folder, "f3", "read")
    await mallory.insert(Note("x", "f1", see_also="f3"))


async def test_a_record_the_stored_record_names_is_not_newly_named_by_another_link(
    db: netabase.Database,
) -> None:
    """ "Newly names" is per record, not per field: a rewrite may name, in another link, a record
    the stored record already names, without ``read`` on it."""
    await db.store(Note).insert(Note("n", "f3", "mallory"))  # in s2: mallory may not read f3
    mallory = db.as_principal("mallory").store(Note)
    await mallory.insert(Note("n", "f3", "mallory", see_also="f3"))  # her note, as its author
    assert await db.store(Note).get("n") == Note("n", "f3", "mallory", see_also="f3")
    await db.store(Note).insert(Note("m", "f1", "mallory"))
    with pytest.raises(netabase.LinkViolation):  # "m" as stored names no f3: newly named
        await mallory.insert(Note("m", "f1", "mallory", see_also="f3"))


async def test_an_enforced_scan_skips_corrupt_records_it_may_not_read(
    db: netabase.Database,
) -> None:
    notes = db.store(Note)
    await notes.insert_many([Note("a", "f1"), Note("c", "f3"), Note("d", "f2")])
    info = db._runtime.actor_for(Note).info
    corrupt = WriteBatch((Put(info.space, info.encode_key("b"), b"\xc1 not msgpack"),))
    await db._runtime.backend.apply([corrupt])
    mallory = db.as_principal("mallory").store(Note)
    assert [n.id async for n in mallory.scan()] == ["a", "d"]  # b: judged on itself alone
    assert [n.id async for n in mallory.scan(limit=1)] == ["a"]
    await db.permissions.grant("mallory", Note, "b", "read")
    seen = []
    with pytest.raises(netabase.CorruptRecord) as raised:
        async for note in mallory.scan():
            seen.append(note.id)
    assert seen == ["a"] and raised.value.key == "b"
    assert [n.id async for n in mallory.scan(skip_corrupt=True)] == ["a", "d"]
    await notes.insert_many([Note(f"e{i:03}", "f3" if i % 2 else "f1") for i in range(230)])
    await db.permissions.revoke("mallory", Note, "b")
    readable = [n.id async for n in mallory.scan(start="c")]  # pages of 100, half readable
    assert readable == ["d", *(f"e{i:03}" for i in range(0, 230, 2))]
    assert len([n async for n in mallory.scan(start="c", limit=70)]) == 70


# -- every enforced operation against a brute-force reference of the documented rule ----------

SPACES = ["s1", "s2", "s3"]  # s3 never exists
FOLDERS = ["f1", "f2", "f3", "f4"]  # f4 does not exist at first
NOTES = ["n1", "n2", "n3", "n4", "n5"]
OBJECTS = (
    [("Space", k) for k in SPACES] + [("Folder", k) for k in FOLDERS] + [("Note", k) for k in NOTES]
)
MAYBE_FOLDER = st.sampled_from([None, *FOLDERS])
OPERATIONS = st.one_of(
    st.tuples(
        st.just("put_note"),
        st.sampled_from(NOTES),
        st.sampled_from(FOLDERS),
        st.sampled_from(["p", "q"]),
        st.booleans(),
        MAYBE_FOLDER,
    ),
    st.tuples(st.just("put_folder"), st.sampled_from(FOLDERS), st.sampled_from(SPACES)),
    st.tuples(st.just("remove_note"), st.sampled_from(NOTES)),
    st.tuples(st.just("remove_folder"), st.sampled_from(FOLDERS)),
    st.tuples(st.just("remove_space"), st.sampled_from(SPACES)),
)
LIKELY = [("Space", "s1"), ("Space", "s2"), ("Folder", "f1"), ("Folder", "f3")] * 2
GRANTS = st.lists(
    st.tuples(
        st.sampled_from(["p", "team"]),
        st.sampled_from(OBJECTS + LIKELY),
        st.sampled_from(["read", "write", "write"]),
    ),
    min_size=1,
    max_size=6,
    unique=True,
)


def seed_notes(locked: bool) -> list[Note]:
    return [
        Note("n1", "f1", "p"),
        Note("n2", "f2", "q", see_also="f1"),
        Note("n3", "f3", "q", see_also="f1"),
        Note("n4", "f1", "q", locked=locked),
    ]


class Reference:
    """The documented rule, applied by walking plain dicts: principal ``p``, a member of
    ``team``; Note has allow(write, is_author) and require(write, unlocked)."""

    def __init__(self, grants: list[tuple[str, tuple[str, str], str]], notes: list[Note]) -> None:
        self.grants = grants
        self.spaces = {"s1", "s2"}
        self.folders = {"f1": "s1", "f2": "s1", "f3": "s2"}
        self.notes = {note.id: note for note in notes}

    def exists(self, obj: tuple[str, str]) -> bool:
        model, key = obj
        return key in {"Space": self.spaces, "Folder": self.folders, "Note": self.notes}[model]

    def chain(self, obj: tuple[str, str]) -> list[tuple[str, str]]:
        out = [obj]
        while True:
            model, key = out[-1]
            if model == "Note" and key in self.notes:
                out.append(("Folder", self.notes[key].folder))
            elif model == "Folder" and key in self.folders:
                out.append(("Space", self.folders[key]))
            else:
                return out

    def granted(self, action: str, chain: list[tuple[str, str]]) -> bool:
        roles = {"write"} if action == "write" else {"read", "write"}
        return any(obj in chain and role in roles for _, obj, role in self.grants)

    def may_write_stored(self, obj: tuple[str, str]) -> bool:
        allowed = self.granted("write", self.chain(obj))
        if obj[0] == "Note":
            note = self.notes.get(obj[1])
            if note is None:
                return False  # require needs a record
            allowed = (allowed or note.author == "p") and not note.locked
        return allowed

    def readable(self, obj: tuple[str, str]) -> bool:
        return self.exists(obj) and self.granted("read", self.chain(obj))

    def put(self, model: str, record: Any, parent: tuple[str, str], links: list[Any]) -> str:
        obj = (model, record.id)
        old = self.notes.get(record.id) if model == "Note" else None
        if model == "Folder" and record.id in self.folders:
            old = Folder(record.id, self.folders[record.id])
        if old is not None and not self.may_write_stored(obj):
            return "denied"
        old_parent = None if old is None else getattr(old, "folder" if model == "Note" else "space")
        if (old is None or old_parent != parent[1]) and not self.granted(
            "write", [obj, *self.chain(parent)]
        ):
            return "denied"
        if model == "Note" and record.locked:
            return "denied"
        old_links = [] if old is None else self.links_of(old)
        for target in links:
            if target not in old_links and not self.readable(target):
                return "link"  # missing, or unreadable: reported alike
        if model == "Note":
            self.notes[record.id] = record
        else:
            self.folders[record.id] = record.space
        return "ok"

    def links_of(self, record: Any) -> list[tuple[str, str]]:
        if isinstance(record, Note):
            also = [("Folder", record.see_also)] if record.see_also else []
            return [("Folder", record.folder), *also]
        return [("Space", record.space)]

    def remove(self, obj: tuple[str, str]) -> str:
        if self.exists(obj):
            allowed = self.may_write_stored(obj)
        else:
            allowed = obj[0] != "Note" and self.granted("write", [obj])
        if not allowed:
            return "denied"
        gone = {obj}
        frontier = [obj]
        while frontier:
            model, key = frontier.pop()
            below = []
            if model == "Space":
                below = [("Folder", f) for f, s in self.folders.items() if s == key]
            elif model == "Folder":
                below = [("Note", n) for n, note in self.notes.items() if note.folder == key]
            for each in below:
                if each not in gone:
                    gone.add(each)
                    frontier.append(each)
        deleted_folders = {key for model, key in gone if model == "Folder"}
        rewritten = [
            n
            for n, note in self.notes.items()
            if note.see_also in deleted_folders and ("Note", n) not in gone
        ]
        touched = (gone - {obj}) | {("Note", n) for n in rewritten}
        if not all(self.may_write_stored(each) for each in touched):
            return "denied"
        for model, key in gone:
            if model == "Space":
                self.spaces.discard(key)
            elif model == "Folder":
                self.folders.pop(key, None)
            else:
                self.notes.pop(key, None)
        for n in rewritten:
            self.notes[n] = attrs.evolve(self.notes[n], see_also=None)
        return "ok"


def test_enforced_operations_match_the_reference(backend_url: str) -> None:
    portal = TrioPortal()
    portal.start()
    try:
        held = portal.enter(netabase.open(backend_url, models=MODELS))
        try:
            db: netabase.Database = held.value
            portal.run(db.permissions.add_member, "team", "p")

            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
            @given(
                grants=GRANTS,
                locked=st.booleans(),
                operations=st.lists(OPERATIONS, min_size=1, max_size=6),
            )
            def check(grants: list[Any], locked: bool, operations: list[Any]) -> None:
                portal.run(_check_against_reference, db, grants, locked, operations)

            check()
        finally:
            held.close()
    finally:
        portal.stop()


async def _check_against_reference(
    db: netabase.Database, grants: list[Any], locked: bool, operations: list[Any]
) -> None:
    await db.store(Space).remove_many(SPACES)  # cascades to every folder and note
    await db.store(Space).insert_many([Space("s1"), Space("s2")])
    await db.store(Folder).insert_many([Folder("f1", "s1"), Folder("f2", "s1"), Folder("f3", "s2")])
    notes = seed_notes(locked)
    await db.store(Note).insert_many(notes)
    models = {"Space": Space, "Folder": Folder, "Note": Note}
    for holder, (model, key), role in grants:
        await db.permissions.grant(holder, models[model], key, role)
    reference = Reference(grants, notes)
    view = db.as_principal("p")
    try:
        for operation in operations:
            kind, key = operation[0], operation[1]
            if kind == "put_note":
                _, _, folder, author, locked, see_also = operation
                note = Note(key, folder, author, locked, see_also)
                expected = reference.put("Note", note, ("Folder", folder), reference.links_of(note))
                action = view.store(Note).insert(note)
            elif kind == "put_folder":
                record = Folder(key, operation[2])
                expected = reference.put(
                    "Folder", record, ("Space", record.space), reference.links_of(record)
                )
                action = view.store(Folder).insert(record)
            else:
                model = {"remove_note": "Note", "remove_folder": "Folder", "remove_space": "Space"}[
                    kind
                ]
                expected = reference.remove((model, key))
                action = view.store(models[model]).remove(key)
            try:
                await action
                outcome = "ok"
            except netabase.PermissionDenied:
                outcome = "denied"
            except netabase.LinkViolation:
                outcome = "link"
            assert outcome == expected, (operation, grants)
            assert {f.id: f.space async for f in db.store(Folder).scan()} == reference.folders
            assert {n.id: n async for n in db.store(Note).scan()} == reference.notes
            assert {s.id async for s in db.store(Space).scan()} == reference.spaces
    finally:
        for holder, (model, key), _ in grants:
            await db.permissions.revoke(holder, models[model], key)
