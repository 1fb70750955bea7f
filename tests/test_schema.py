"""Stored schemas, strict decoding and strict input: a record never loses or invents a field."""

from __future__ import annotations

import enum
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import hypothesis.strategies as st
import msgpack
import pytest
import trio

import netabase
from netabase._stored_schema import SPACE, compare, describe, reconcile
from netabase.backends import Delete, WriteBatch, open_backend
from netabase.testing import backend_kit as kv


@netabase.model(key="id")
@attrs.frozen
class Person:
    id: str


@netabase.model(key="id")
@attrs.frozen
class Team:
    id: str


def thing(*, key: str = "id", **options: Any) -> Any:
    """Declare an attrs class as the model "Thing": every variant shares the one keyspace."""

    def decorate(cls: type) -> type:
        return netabase.model(key=key, name="Thing", **options)(cls)

    return decorate


@thing()
@attrs.frozen
class Thing:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingWithNote:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)
    note: str = "none"
    helper: str | None = netabase.link(Person, required=False)  # new, links nothing by default


@thing()
@attrs.frozen
class ThingRemoved:
    id: str
    name: str
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingRenamed:
    id: str
    title: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingRetyped:
    id: str
    name: str
    size: str = ""
    owner: str | None = netabase.link(Person, required=False)


@thing(key="name")
@attrs.frozen
class ThingRekeyed:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingRequired:
    id: str
    name: str
    color: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingRetargeted:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Team, required=False)


@thing(parent="owner")
@attrs.frozen
class ThingParented:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing(version=2)
@attrs.frozen
class ThingV2:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing(unique=("name",))
@attrs.frozen
class ThingUnique:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)


@thing()
@attrs.frozen
class ThingLinkedDefault:
    id: str
    name: str
    size: int = 0
    owner: str | None = netabase.link(Person, required=False)
    buddy: str = netabase.link(Person, default="p1")


@thing()
@attrs.frozen
class ThingUnlinked:
    id: str
    name: str
    size: int = 0
    owner: str | None = None


THING = netabase.info_of(Thing)
assert THING is not None

INCOMPATIBLE = {
    ThingRemoved: ["field 'size' is stored but not declared (declare size: int again)"],
    ThingRenamed: [
        "field 'name' is stored but not declared",
        "field 'title' is new and has no default",
    ],
    ThingRetyped: ["field 'size' changed type: stored int, declared str (declare size: int)"],
    ThingRekeyed: ["key: stored id: str, declared name: str"],
    ThingRequired: ["field 'color' is new and has no default"],
    ThingRetargeted: ["link 'owner' retargeted: stored Person, declared Team"],
    ThingParented: ["parent: stored None, declared 'owner'"],
    ThingV2: ["version: stored 1, declared 2 (declare version=1)"],
    ThingUnique: ["field 'name' is newly unique"],
    ThingUnlinked: ["field 'owner' is no longer a link to Person"],
    ThingLinkedDefault: ["new link field 'buddy' defaults to a key"],
}


async def stored_schema(url: str) -> dict[str, Any]:
    backend = open_backend(url)
    await backend.start([SPACE])
    try:
        raw = await kv.get(backend, SPACE, b"Thing")
    finally:
        await backend.aclose()
    assert raw is not None
    return dict(json.loads(raw))


async def test_a_compatible_change_is_accepted_and_recorded(reopenable: str) -> None:
    async with netabase.open(reopenable, models=[Thing, Person]) as db:
        await db.store(Thing).insert(Thing("t1", "first", 3))
    assert "note" not in (await stored_schema(reopenable))["fields"]

    async with netabase.open(reopenable, models=[ThingWithNote, Person, Team]) as db:
        assert await db.store(ThingWithNote).get("t1") == ThingWithNote("t1", "first", 3)
        await db.store(ThingWithNote).insert(ThingWithNote("t2", "second", note="kept"))
    recorded = await stored_schema(reopenable)
    assert recorded["fields"]["note"] == {"type": "str", "default": True, "added": True}

    async with netabase.open(reopenable, models=[ThingWithNote, Person, Team]) as db:
        assert await kv.get(db.backend, SPACE, b"Team") is not None  # the new model, recorded too
        stored = await db.store(ThingWithNote).get_many(["t1", "t2"])
        assert stored == [
            ThingWithNote("t1", "first", 3),
            ThingWithNote("t2", "second", 0, None, "kept"),
        ]
    # Going back would drop the recorded field from records that have it.
    with pytest.raises(netabase.SchemaMismatch, match="field 'note' is stored but not declared"):
        async with netabase.open(reopenable, models=[Thing, Person]):
            pass


@pytest.mark.parametrize("declared", list(INCOMPATIBLE), ids=lambda cls: cls.__name__)
async def test_each_incompatible_change_raises_at_open(reopenable: str, declared: type) -> None:
    async with netabase.open(reopenable, models=[Thing, Person, Team]) as db:
        await db.store(Thing).insert(Thing("t1", "first", 3, None))
    before = await stored_schema(reopenable)

    with pytest.raises(netabase.SchemaMismatch) as raised:
        async with netabase.open(reopenable, models=[declared, Person, Team]):
            pytest.fail("opened with an incompatible model")
    error = raised.value
    assert error.model == "Thing" and list(error.differences) == ["Thing"]
    message = str(error)
    assert message.startswith("stored schema of Thing differs")
    for difference in INCOMPATIBLE[declared]:
        assert difference in message
    assert len(error.differences["Thing"]) == len(INCOMPATIBLE[declared])
    assert "netabase export" in message  # how to move the data instead

    assert await stored_schema(reopenable) == before  # nothing recorded
    async with netabase.open(reopenable, models=[Thing, Person, Team]) as db:
        assert await db.store(Thing).get("t1") == Thing("t1", "first", 3)


async def test_a_database_without_stored_schemas_adopts_the_declared_ones(
    reopenable: str,
) -> None:
    async with netabase.open(reopenable, models=[Thing, Person]) as db:
        await db.store(Thing).insert(Thing("t1", "first"))
        await db.backend.apply([WriteBatch((Delete(SPACE, b"Thing"), Delete(SPACE, b"Person")))])
    # As written by the previous release: records, no schema. Other models do not fit them.
    with pytest.raises(netabase.SchemaMismatch) as raised:
        async with netabase.open(reopenable, models=[ThingRenamed, Person]):
            pass
    assert "stored records do not match the declaration" in str(raised.value)
    assert "unknown field(s) name" in str(raised.value)
    async with netabase.open(reopenable, models=[Thing, Person]) as db:
        assert await db.store(Thing).get("t1") == Thing("t1", "first")
    assert (await stored_schema(reopenable))["fields"]["name"] == {"type": "str", "default": False}


async def test_concurrent_openers_settle_on_one_stored_schema(reopenable: str) -> None:
    backend = open_backend(reopenable)
    await backend.start([SPACE, "Thing"])
    outcomes: list[str] = []

    async def open_with(models: dict[str, Any]) -> None:
        try:
            await reconcile(backend, models)
            outcomes.append("opened")
        except netabase.SchemaMismatch:
            outcomes.append("refused")

    try:
        one = {"Thing": netabase.info_of(Thing)}
        other = {"Thing": netabase.info_of(ThingRetyped)}
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(open_with, one)
        assert outcomes == ["opened"] * 3
        outcomes.clear()
        await backend.apply([WriteBatch((Delete(SPACE, b"Thing"),))])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_with, one)
            nursery.start_soon(open_with, other)
        assert sorted(outcomes) == ["opened", "refused"]  # never both
    finally:
        await backend.aclose()


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


@attrs.frozen
class Spot:
    x: int
    shade: Shade = Shade.DARK


@netabase.model(key="id", name="Map")
@attrs.frozen
class MapV1:
    id: int
    spots: tuple[Spot, ...] = ()


@netabase.model(key="id", name="Map")
@attrs.frozen
class MapOptional:
    id: int
    spots: typing.Optional[tuple[Spot, ...]] = ()  # noqa: UP045 - the same as `... | None`


def test_nested_types_and_enums_are_part_of_the_schema() -> None:
    def spot_changed(spot: type) -> list[str]:
        variant = attrs.make_class("Spot", {"x": attrs.field(type=spot)}, frozen=True)
        changed = netabase.model(key="id", name="Map")(
            attrs.make_class(
                "MapV2",
                {"id": attrs.field(type=int), "spots": attrs.field(type=tuple[variant, ...])},
                frozen=True,
            )
        )
        return compare(describe(netabase.info_of(MapV1)), describe(netabase.info_of(changed)))[0]

    [difference] = spot_changed(float)
    assert difference.startswith("nested type Spot changed: stored fields (x: int, shade: Shade")
    stored = describe(netabase.info_of(MapV1))
    assert stored["fields"]["spots"]["type"] == "tuple[Spot, ...]"
    assert stored["types"]["Shade"] == {"enum": ["'dark'", "'light'"]}
    optional = describe(netabase.info_of(MapOptional))
    assert optional["fields"]["spots"]["type"] == "tuple[Spot, ...] | None"
    stored["types"]["Shade"] = {"enum": ["'dark'", "'light'", "'dim'"]}
    found, _ = compare(stored, describe(netabase.info_of(MapV1)))
    assert found == ["enum Shade lost stored value(s) 'dim' (declare them again)"]


# -- strict decoding ------------------------------------------------------------------------


def raw_record(fields: dict[str, Any]) -> bytes:
    return bytes((1, 1)) + msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"id": "x", "name": "n", "size": 1, "owner": None, "extra": 1},
            "unknown field(s) extra not declared by Thing",
        ),
        ({"id": "x", "size": 1, "owner": None}, "missing field(s) name declared by Thing"),
        ({"id": "x", "name": "n", "owner": None}, "missing field(s) size declared by Thing"),
        (["x", "n", 1, None], "stored list, not a map of Thing fields"),
    ],
    ids=["extra", "missing", "missing-with-default", "not-a-map"],
)
async def test_a_stored_record_that_does_not_match_the_model_is_corrupt(
    backend_url: str, fields: Any, problem: str
) -> None:
    async with netabase.open(backend_url, models=[Thing, Person]) as db:
        key = THING.encode_key
        await kv.insert(db.backend, "Thing", key("x"), raw_record(fields))
        await kv.insert(
            db.backend, "Thing", key("ok"), raw_record(attrs.asdict(Thing("ok", "fine")))
        )
        with pytest.raises(netabase.CorruptRecord) as raised:
            await db.store(Thing).get("x")
        assert raised.value.model == "Thing" and raised.value.key == "x"
        assert problem in str(raised.value)
        assert await db.store(Thing).get("ok") == Thing("ok", "fine")


@attrs.frozen
class Node:
    label: str
    child: Node | None = None


@netabase.model(key="id")
@attrs.frozen
class Tree:
    id: str
    root: Node | None = None
    blob: Any = None


TREE = netabase.info_of(Tree)
assert TREE is not None


def nested_node(levels: int) -> Node | None:
    node = None
    for level in range(levels):
        node = Node(str(level), node)
    return node


def test_nested_stored_records_are_strict_too() -> None:
    info = TREE
    extra = {"id": "t", "root": {"label": "a", "child": None, "x": 1}, "blob": None}
    lacking = {"id": "t", "root": {"label": "a"}, "blob": None}
    for fields, problem in ((extra, "unknown field(s) x"), (lacking, "missing field(s) child")):
        with pytest.raises(netabase.CorruptRecord, match=re.escape(problem)):
            info.codec.decode(raw_record(fields), b"t")


# -- deep nesting -------------------------------------------------------------------------------


async def test_deep_nesting_is_refused_by_name_never_a_recursion_error() -> None:
    deep_list: Any = "leaf"
    for _ in range(500):
        deep_list = [deep_list]
    async with netabase.open("memory://", models=[Tree]) as db:
        store = db.store(Tree)
        with pytest.raises(netabase.ValidationError) as raised:
            await store.insert(Tree("t", nested_node(500)))
        assert raised.value.model == "Tree" and raised.value.field == "root"
        assert "Node values nested deeper than 100 levels" in str(raised.value)
        assert len(str(raised.value)) < 400
        with pytest.raises(netabase.ValidationError, match="nesting deeper than 100 levels"):
            await store.insert(Tree("t", blob=deep_list))

        deepest = Tree("ok", nested_node(100), blob=deep_list_of(99))
        await store.insert(deepest)  # the limit itself round-trips
        assert await store.get("ok") == deepest

        key = TREE.encode_key
        fields = msgpack.packb({"id": "d", "root": None, "blob": None})
        too_deep = bytes((1, 1)) + fields[:-1] + b"\x91" * 2000 + b"\x01"  # blob: 2000 lists
        await kv.insert(db.backend, "Tree", key("d"), too_deep)
        nodes: dict[str, Any] = {"label": "leaf", "child": None}
        for _ in range(500):
            nodes = {"label": "n", "child": nodes}
        await kv.insert(
            db.backend, "Tree", key("n"), raw_record({"id": "n", "root": nodes, "blob": None})
        )
        for name in ("d", "n"):
            with pytest.raises(netabase.CorruptRecord) as corrupt:
                await store.get(name)
            assert (corrupt.value.model, corrupt.value.key) == ("Tree", name)
            assert "nested too deeply to decode" in str(corrupt.value)

    with pytest.raises(netabase.ValidationError) as from_input:
        TREE.structure({"id": "i", "root": nodes})
    assert from_input.value.model == "Tree" and from_input.value.key == "i"


def deep_list_of(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# -- strict input -----------------------------------------------------------------------------


def test_records_built_from_input_name_unknown_and_missing_fields() -> None:
    info = THING
    assert info.structure({"id": "a", "name": "n"}) == Thing("a", "n")
    cases = [
        ({"id": "a", "name": "n", "extra": 1}, "extra", "unknown field 'extra'"),
        ({"id": "a", "size": 2}, "name", "missing field 'name'"),
        ({"id": "a", "name": "n", "size": "big"}, "size", "size: "),
    ]
    for data, field, problem in cases:
        with pytest.raises(netabase.ValidationError) as raised:
            info.structure(data)
        assert (raised.value.model, raised.value.key, raised.value.field) == ("Thing", "a", field)
        assert problem in str(raised.value)
    with pytest.raises(netabase.ValidationError) as nested:
        TREE.structure({"id": "t", "root": {"label": "a", "x": 1}})
    assert "unknown field(s) x in Node" in str(nested.value)


def test_schema_mismatch_is_public() -> None:
    assert "SchemaMismatch" in netabase.__all__
    assert issubclass(netabase.SchemaMismatch, netabase.NetabaseError)


async def test_an_unreadable_stored_schema_is_corrupt_not_a_crash(reopenable: str) -> None:
    for junk in (b"\xff", b"[1]", b'{"format": 1}'):
        backend = open_backend(reopenable)
        await backend.start([SPACE])
        await kv.insert(backend, SPACE, b"Thing", junk)
        await backend.aclose()
        with pytest.raises(netabase.CorruptRecord) as raised:
            async with netabase.open(reopenable, models=[Thing, Person]):
                pass
        assert (raised.value.model, raised.value.key) == (SPACE, "Thing")
        assert "unreadable stored schema" in str(raised.value)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    fields=st.dictionaries(
        st.sampled_from(["id", "name", "size", "owner", "extra", "note"]),
        st.sampled_from(["v", 1, None]),
    )
)
def test_decode_accepts_exactly_the_declared_fields(fields: dict[str, Any]) -> None:
    """Against the simplest reference: a stored map decodes iff its keys are the declared ones."""
    well_typed = {"id": "k", "name": "n", "size": 1, "owner": None}
    data = {name: well_typed.get(name, value) for name, value in fields.items()}
    try:
        record = THING.codec.decode(raw_record(data), THING.encode_key("k"))
    except netabase.CorruptRecord as exc:
        assert set(data) != set(well_typed)
        assert ("unknown" in str(exc)) is bool(set(data) - set(well_typed))
        assert ("missing" in str(exc)) is bool(set(well_typed) - set(data))
    else:
        assert set(data) == set(well_typed) and record == Thing("k", "n", 1, None)


def test_a_deep_caller_stack_still_gets_netabase_errors() -> None:
    """Within the nesting limit, but called with little stack left: converted, never raw."""
    record = Tree("t", nested_node(100))
    encoded = TREE.codec.encode(record)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 120)
    try:
        with pytest.raises(netabase.ValidationError, match="nested too deeply to check"):
            TREE.check(record)
        with pytest.raises(netabase.CorruptRecord, match="nested too deeply to decode"):
            TREE.codec.decode(encoded, TREE.encode_key("t"))
    finally:
        sys.setrecursionlimit(limit)


OPENER = """
import sys, attrs, trio, netabase

@netabase.model(key="id", name="Thing")
@attrs.frozen
class Thing:
    id: str
    size: int if sys.argv[2] == "int" else str

async def main() -> None:
    try:
        async with netabase.open(sys.argv[1], models=[Thing]):
            print("opened")
    except netabase.SchemaMismatch:
        print("refused")

trio.run(main)
"""


async def test_processes_opening_at_once_settle_on_one_schema(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'db'}"
    outcomes: dict[str, list[str]] = {"int": [], "str": []}

    async def run(kind: str) -> None:
        done = await trio.run_process(
            [sys.executable, "-c", OPENER, url, kind], capture_stdout=True, check=True
        )
        outcomes[kind].append(done.stdout.decode().strip())

    async with trio.open_nursery() as nursery:
        for kind in ("int", "str", "int", "str"):
            nursery.start_soon(run, kind)
    # Whichever wrote the schema first, every opener with the other declaration was refused.
    assert sorted(map(sorted, outcomes.values())) == [
        ["opened", "opened"],
        ["refused", "refused"],
    ]
