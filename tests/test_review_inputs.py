"""Adversarial review of the CLI's dump/restore and the argument checks: each test is a defect
found by trying to break them, and fails without its fix."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import netabase
from netabase.cli import run_cli
from netabase.demo import MODELS, Customer, Order

SCRIPT = Path(sys.executable).parent / "netabase"


class LyingStr(str):
    """Methods a key encoder must not trust: the record stores the text itself."""

    def encode(self, *args: object, **kwargs: object) -> bytes:
        return b"other"


class LyingInt(int):
    def to_bytes(self, *args: object, **kwargs: object) -> bytes:
        return b"\x09"

    def bit_length(self) -> int:
        return 1


class LyingBytes(bytes):
    def __bytes__(self) -> bytes:
        return b"other"


class LyingTuple(tuple):  # type: ignore[type-arg]
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(("other", 0))


@netabase.model(key="id", unique=("email",))
@attrs.frozen
class Account:
    id: str
    email: str


@netabase.model(key="id")
@attrs.frozen
class Entry:
    id: int
    account: str = netabase.link(Account)


@netabase.model(key="id")
@attrs.frozen
class Blob:
    id: bytes


@netabase.model(key="id")
@attrs.frozen
class Pair:
    id: tuple[str, int]


@netabase.model(key="id")
@attrs.frozen
class Note:
    id: int
    text: str


def customers(tmp_path: Path, count: int) -> Path:
    """A dump of ``count`` customers and an order per customer."""
    url = f"lmdb://{tmp_path / 'source'}"
    with netabase.connect_sync(url, models=MODELS) as db:
        db.store(Customer).insert_many(Customer(f"c{i:05}", "C", "c@x") for i in range(count))
        db.store(Order).insert_many(Order(i, f"c{i:05}") for i in range(count))
    backup = tmp_path / "backup.jsonl"
    assert run_cli(["dump", url, str(backup)]) == 0
    return backup


def restore(url: str, backup: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCRIPT, "restore", url, backup, "--batch", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_restores_at_once_never_both_write(tmp_path: Path) -> None:
    """Both used to find the database empty and both wrote into it, interleaved."""
    backup = customers(tmp_path, 100)
    url = f"lmdb://{tmp_path / 'target'}"
    runs = [restore(url, backup), restore(url, backup)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs if run.stderr]
    assert sorted(status for status, _ in results) == [0, 1], results
    loser = next(err for status, err in results if status == 1)
    assert "another restore into it is running" in loser or "is not empty" in loser, loser


def test_a_restore_that_did_not_finish_is_named_until_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed batch (and a killed restore, below) leaves a partial database; the next restore
    said only "not empty", as if it were someone's data, and nothing marked it incomplete."""
    backup = customers(tmp_path, 5)
    lines = backup.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"  # customer c00002 left out: order 2 fails its batch
    kept = [line for line in lines if '"c00002", "name"' not in line]
    end = json.loads(kept[-1])
    end["end"]["records"] -= 1
    broken.write_text("\n".join([*kept[:-1], json.dumps(end)]) + "\n")
    url = f"lmdb://{tmp_path / 'target'}"
    assert run_cli(["restore", url, str(broken)]) == 1
    assert "Customer key 'c00002', which does not exist" in capsys.readouterr().err
    assert run_cli(["restore", url, str(backup)]) == 1
    err = capsys.readouterr().err
    assert "another restore into it is running, or one did not finish" in err, err
    assert run_cli(["dump", url, str(tmp_path / "partial.jsonl")]) == 1  # not a backup
    err = capsys.readouterr().err
    assert "a restore into it is running, or one did not finish" in err, err
    assert not (tmp_path / "partial.jsonl").exists()
    assert run_cli(["restore", url, str(backup), "--force"]) == 0
    capsys.readouterr()
    assert run_cli(["dump", url, str(tmp_path / "full.jsonl")]) == 0
    assert run_cli(["restore", url, str(backup)]) == 1  # finished: an ordinary full database
    err = capsys.readouterr().err
    assert "is not empty" in err and "did not finish" not in err, err


def test_a_killed_restore_is_named_as_unfinished(tmp_path: Path) -> None:
    backup = customers(tmp_path, 2000)
    url = f"lmdb://{tmp_path / 'target'}"
    run = restore(url, backup)
    deadline = time.monotonic() + 60
    while True:  # a real process: wait until it has written some records, then kill it
        assert run.poll() is None and time.monotonic() < deadline
        if (tmp_path / "target").exists():
            with netabase.connect_sync(url, models=MODELS) as db:
                if db.store(Customer).count():
                    break
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    again = restore(url, backup)
    assert again.wait(timeout=60) == 1
    assert again.stderr is not None
    assert "one did not finish" in again.stderr.read()


def test_restore_refuses_a_database_holding_other_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dump of other models was merged into a populated database as if it were empty."""
    notes = f"lmdb://{tmp_path / 'notes'}"
    with netabase.connect_sync(notes, models=[Note]) as db:
        db.store(Note).insert(Note(1, "hi"))
    spec = f"{__name__}:Note"
    assert run_cli(["dump", notes, str(tmp_path / "notes.jsonl"), "-m", spec]) == 0
    shop = customers(tmp_path, 3).parent / "source"
    capsys.readouterr()
    assert run_cli(["restore", f"lmdb://{shop}", str(tmp_path / "notes.jsonl"), "-m", spec]) == 1
    err = capsys.readouterr().err
    assert "holds 3 Customer, 3 Order records of models --models does not name" in err, err
    with netabase.connect_sync(f"lmdb://{shop}", models=[*MODELS, Note]) as db:
        assert db.store(Note).count() == 0
    assert run_cli(["restore", f"lmdb://{shop}", str(tmp_path / "notes.jsonl"), "-m", spec,
                    "--force"]) == 0  # fmt: skip


def has_cycle(edges: list[tuple[str, str]]) -> bool:
    """Brute force: some group reaches itself through memberships."""
    reach = {(group, member) for group, member in edges}
    while True:
        more = {(a, d) for (a, b), (c, d) in itertools.product(reach, reach) if b == c} - reach
        if not more:
            return any(a == b for a, b in reach)
        reach |= more


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), max_size=6, unique=True)
)
def test_a_dump_whose_memberships_form_a_cycle_is_refused_before_writing(
    capsys: pytest.CaptureFixture[str], edges: list[tuple[str, str]]
) -> None:
    """Such a dump passed the check; its records were written, then add_member refused."""
    with tempfile.TemporaryDirectory() as directory:
        backup, target = Path(directory) / "d.jsonl", Path(directory) / "target"
        lines: list[object] = [
            {"format": "netabase-dump", "version": 1, "models": ["Note"]},
            {"model": "Note", "record": {"id": 1, "text": "x"}},
            *({"member": {"group": g, "member": m}} for g, m in edges),
            {"end": {"records": 1, "grants": 0, "members": len(edges)}},
        ]
        backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
        spec = f"{__name__}:Note"
        status = run_cli(["restore", f"lmdb://{target}", str(backup), "-m", spec])
        err = capsys.readouterr().err
        if has_cycle(edges):
            assert status == 1 and "a group would contain itself" in err, err
            assert not target.exists()
        else:
            assert status == 0, err
            with netabase.connect_sync(f"lmdb://{target}", models=[Note]) as db:
                assert db.store(Note).count() == 1
            found = []
            for group in "abcd":
                assert run_cli(["members", f"lmdb://{target}", group, "-m", spec]) == 0
                found += [(group, m) for m in capsys.readouterr().out.split()]
            assert sorted(found) == sorted(edges)


@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_a_key_of_a_subclass_is_stored_under_its_own_value(tmp_path: Path, kind: str) -> None:
    """The key encoders called the subclass's encode/to_bytes/__bytes__/__iter__: the record
    Account('a') was filed under the key of 'other' (get('a') found nothing), its unique claim
    and a link to it too."""
    url = "memory://" if kind == "memory" else f"lmdb://{tmp_path / 'db'}"
    models = [Account, Entry, Blob, Pair]
    with netabase.connect_sync(url, models=models) as db:
        db.store(Account).insert(Account(LyingStr("a"), LyingStr("a@x")))
        db.store(Account).insert(Account("other", "other@x"))
        db.store(Entry).insert(Entry(LyingInt(7), LyingStr("a")))
        db.store(Blob).insert(Blob(LyingBytes(b"a")))
        db.store(Pair).insert(Pair(LyingTuple(("a", 1))))
        with pytest.raises(netabase.NetabaseError, match="unique"):
            db.store(Account).insert(Account("b", "a@x"))
        db.store(Account).insert(Account("c", "other"))  # "other" is not a's email
        assert db.store(Account).get("a") == Account("a", "a@x")
        assert db.store(Entry).get(7) == Entry(7, "a")
        assert db.store(Blob).get(b"a") == Blob(b"a")
        assert db.store(Pair).get(("a", 1)) == Pair(("a", 1))
        assert db.store(Entry).get(9) is None
        with pytest.raises(netabase.LinkViolation):
            db.store(Account).remove("a")  # Entry 7 links to it (on_delete restrict)
        db.store(Account).remove("other")


def test_a_command_line_key_nested_past_the_recursion_limit_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a RecursionError traceback echoing the whole argument (exit 1)."""
    url = f"lmdb://{tmp_path / 'pairs'}"
    with netabase.connect_sync(url, models=[Pair]) as db:
        db.store(Pair).insert(Pair(("a", 1)))
    spec = f"{__name__}:Pair"
    status = run_cli(["check", url, "ann", "read", "Pair", "[" * 100_000, "-m", spec])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: '[[[[") and err.endswith("nested too deeply\n")
    assert len(err) < 200 and "Traceback" not in err


def test_a_dump_line_nested_past_the_recursion_limit_is_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """import reported it as a bad line; restore died with a RecursionError traceback."""
    backup = customers(tmp_path, 2)
    lines = backup.read_text().splitlines()
    deep = tmp_path / "deep.jsonl"
    deep.write_text("\n".join([lines[0], "[" * 100_000, *lines[1:]]) + "\n")
    capsys.readouterr()
    status = run_cli(["restore", f"lmdb://{tmp_path / 'target'}", str(deep)])
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.splitlines() == [
        f"{deep}:2: JSON nested too deeply",
        "error: 1 bad line(s); nothing restored",
    ]
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    ("line", "replacement", "problem"),
    [
        (0, '"version": true', "dump format True; this netabase reads version 1"),
        (0, '"version": 1.0', "dump format 1.0; this netabase reads version 1"),
        (-1, '"records": 4.9', "end line: the counts must be whole numbers"),
        (-1, '"records": "4"', "end line: the counts must be whole numbers"),
    ],
)
def test_a_header_or_end_line_of_another_type_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int, replacement: str, problem: str
) -> None:
    """version true / 1.0 read as format 1, and end counts 4.9 or "4" as 4."""
    backup = customers(tmp_path, 2)
    lines = backup.read_text().splitlines()
    original = '"version": 1' if line == 0 else '"records": 4'
    assert original in lines[line]
    lines[line] = lines[line].replace(original, replacement)
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run_cli(["restore", f"lmdb://{tmp_path / 'target'}", str(edited)]) == 1
    err = capsys.readouterr().err
    assert problem in err, err
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    "queries",
    [
        "abc",
        5,
        [("ann", "read", Note)],
        [("ann", "read", Note, 1, "extra")],
        [["ann", "read", Note, 1]],
        [("ann", "read", Note, 1), None],
    ],
)
async def test_check_many_names_a_query_that_is_not_a_four_tuple(queries: object) -> None:
    """Permissions.check_many raised TypeError from its helper's signature."""
    async with netabase.open("memory://", models=[Note]) as db:
        with pytest.raises(netabase.ValidationError, match="queries") as info:
            await db.permissions.check_many(queries)  # type: ignore[arg-type]
        assert info.value.model == "permissions"
        assert await db.permissions.check_many([("ann", "read", Note, 1)]) == [False]


def test_a_dump_leaves_another_dumps_partial_file_alone(tmp_path: Path) -> None:
    """Every dump to FILE wrote .FILE.partial: a second dump at once truncated the first's, both
    wrote into one file, and the first to finish renamed it under the other's feet."""
    url = f"lmdb://{tmp_path / 'source'}"
    with netabase.connect_sync(url, models=MODELS) as db:
        db.store(Customer).insert(Customer("c1", "C", "c@x"))
    backup = tmp_path / "backup.jsonl"
    other = tmp_path / ".backup.jsonl.partial"  # the file a dump running now is writing
    other.write_text("another dump's lines\n")
    assert run_cli(["dump", url, str(backup)]) == 0
    assert other.read_text() == "another dump's lines\n"
    assert backup.read_text().count("\n") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".backup.jsonl.partial",
        "backup.jsonl",
        "source",
    ]


@pytest.mark.parametrize(("name_size", "field"), [(505, "t"), (400, "u" * 110)])
def test_a_model_whose_keyspace_name_cannot_be_an_lmdb_name_is_refused_at_definition(
    name_size: int, field: str
) -> None:
    """It worked on memory:// and Redis, and LMDB refused to open with MDB_BAD_VALSIZE."""
    cls = attrs.make_class("Long", {"id": attrs.field(type=int), field: attrs.field(type=str)})
    with pytest.raises(netabase.ModelDefinitionError, match="keyspace"):
        netabase.model(key="id", name="T" * name_size, unique=(field,))(attrs.frozen(cls))


def test_the_longest_keyspace_name_that_fits_opens_on_lmdb(tmp_path: Path) -> None:
    name = "T" * (511 - len("~uniqf..t"))

    @netabase.model(key="id", name=name, unique=("t",))
    @attrs.frozen
    class Longest:
        id: int
        t: str

    with netabase.connect_sync(f"lmdb://{tmp_path / 'db'}", models=[Longest]) as db:
        db.store(Longest).insert(Longest(1, "x"))
        assert db.store(Longest).count() == 1
