"""The newer ``netabase`` commands (grant, revoke, members, dump, restore, bench) and the
command line's edges (closed pipes, usage errors, models in the current directory).

Most run in-process through `netabase.cli.run_cli` (the console script minus ``sys.exit``);
the few that need a real process, a real pipe or the installed script use a subprocess.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import netabase
from netabase._bench import BenchItem
from netabase.actors._permission_spaces import object_id
from netabase.cli import run_cli
from netabase.demo import MODELS, Customer, Order, Product

from .auto_models import Memo, Ticket

SCRIPT = Path(sys.executable).parent / "netabase"
HERE = "tests.test_cli_commands"


@netabase.model(key="id")
@attrs.frozen
class Team:
    id: str


@netabase.model(key="id")
@attrs.frozen
class Person:
    """Self-links: an optional single one and a collection, free to form cycles."""

    id: int
    name: str
    team: str = netabase.link(Team)
    mentor: int | None = netabase.link("self", required=False, on_delete="set_null")
    friends: tuple[int, ...] = netabase.link("self", on_delete="set_null", default=())


@netabase.model(key="id", parent="up")
@attrs.frozen
class Folder:
    """The permission hierarchy: grants on a folder reach everything below it."""

    id: int
    up: int | None = netabase.link("self", required=False, on_delete="cascade")


@netabase.model(key="id")
@attrs.frozen
class Chain:
    """A required self-link: no order of batches is sure to restore it."""

    id: int
    prev: int = netabase.link("self")


@netabase.model(key="id")
@attrs.frozen
class Reading:
    """Every value type the codec stores that JSON has no type for."""

    id: tuple[str, int]
    sensor: uuid.UUID
    amount: decimal.Decimal
    at: datetime.time
    when: datetime.datetime
    raw: bytes
    tags: frozenset[str] = frozenset()


GRAPH = f"{HERE}:Team,Person,Folder"
GRAPH_MODELS = [Team, Person, Folder]
AUTO = "tests.auto_models:Ticket,Memo"


def nb(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the command line in this process: (status, stdout, stderr)."""
    capsys.readouterr()
    status = run_cli([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def shop(tmp_path: Path) -> str:
    url = f"lmdb://{tmp_path / 'shop'}"
    with netabase.connect_sync(url, models=MODELS) as db:
        db.store(Customer).insert_many(Customer(f"c{i}", f"C{i}", f"c{i}@x") for i in range(5))
        db.store(Product).insert(Product("p1", "Pen", 150))
        db.store(Order).insert_many(Order(i, f"c{i % 5}", ("p1",), 150) for i in range(8))
    return url


def graph(tmp_path: Path) -> str:
    """A store with self-link cycles, grants along a hierarchy and nested groups."""
    url = f"lmdb://{tmp_path / 'graph'}"
    with netabase.connect_sync(url, models=GRAPH_MODELS) as db:
        db.store(Team).insert_many([Team("red"), Team("blue")])
        people = db.store(Person)
        people.insert_many(
            [
                Person(1, "ann", "red", mentor=2, friends=(2, 3)),
                Person(2, "bob", "red", mentor=1),
                Person(3, "cy", "blue", mentor=3, friends=(1,)),
            ]
        )
        db.store(Folder).insert_many([Folder(1), Folder(2, up=1), Folder(3, up=2), Folder(4)])
        perms = db.permissions
        perms.add_member("staff", "ann")
        perms.add_member("admins", "staff")
        perms.grant("admins", Folder, 1, "write")
        perms.grant("bob", Folder, 3, "read")
        perms.grant("cy", Person, 3, "admin")
    return url


def everything(url: str, models: list[type]) -> dict[str, list[object]]:
    with netabase.connect_sync(url, models=models) as db:
        return {m.__name__: list(db.store(m).scan()) for m in models}


QUERIES = [
    (who, action, model, key)
    for who in ("ann", "bob", "cy", "staff", "dan")
    for action in ("read", "write", "admin")
    for model, key in ((Folder, 1), (Folder, 3), (Folder, 4), (Person, 3))
]


def answers(url: str) -> list[bool]:
    with netabase.connect_sync(url, models=GRAPH_MODELS) as db:
        return [db.permissions.check(*query) for query in QUERIES]


# -- the models module, pipes and usage errors -----------------------------------------------


def test_the_console_script_finds_a_models_module_in_the_current_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import attrs, netabase\n\n"
        "@netabase.model(key='id')\n@attrs.frozen\nclass Gadget:\n    id: int\n"
    )
    result = subprocess.run(
        [SCRIPT, "inspect", "memory://", "--models", "mymodels"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Gadget" in result.stdout


def test_a_reader_that_stops_early_is_a_normal_end(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'big'}"
    with netabase.connect_sync(url, models=MODELS) as db:  # ~250 kB of JSON: more than a pipe holds
        db.store(Customer).insert_many(
            Customer(f"c{i:05d}", "x" * 40, f"c{i}@example.com") for i in range(3000)
        )
    piped = subprocess.run(
        ["bash", "-c", f'"{SCRIPT}" export {url} Customer | head -1; exit "${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith('{"id": "c00000"') and len(piped.stdout.splitlines()) == 1
    assert piped.stderr == ""
    # A reader gone before the first write: a small output would sit in the buffer until exit.
    # `check` still answers by its status.
    small = shop(tmp_path)
    for args, status in (
        (("export", small, "Customer"), 0),
        (("check", small, "ann", "read", "Order", "1"), 3),
    ):
        read, write = os.pipe()
        os.close(read)
        try:
            closed = subprocess.run(
                [SCRIPT, *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
            )
        finally:
            os.close(write)
        assert (closed.returncode, closed.stderr) == (status, ""), args


def test_usage_errors_are_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shop(tmp_path)
    cases = {
        ("check", url, "ann", "fly", "Order", "1"): (
            "error: unknown action or role 'fly' for Order; known: admin, read, write"
        ),
        ("check", url, "ann", "read", "Order", "abc"): (
            "error: 'abc' is not a valid key for Order: expected int, got str 'abc'"
        ),
        ("check", url, "ann", "read", "Order"): (
            "error: Missing argument 'key'. (see 'netabase check --help')"
        ),
        ("grant", url, "", "Order", "1", "read"): (
            "error: principal must be a non-empty str, got ''"
        ),
        ("grant", url, "ann", "Order", "1", "owner"): (
            "error: unknown action or role 'owner'; known: read, write, admin"
        ),
        ("revoke", url, "ann", "Order", "1.5"): (
            "error: '1.5' is not a valid key for Order: expected int, got float 1.5"
        ),
        ("members", url, "staff", "--add", "x" * 250): (
            "error: member 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... takes 252 bytes as a key "
            "(a NUL counts twice), more than 247"
        ),
        ("restore", url, tmp_path / "missing.jsonl"): (
            f"error: no such file: {tmp_path / 'missing.jsonl'}"
        ),
        ("export", url, "Order", "--bogus"): (
            "error: No such option: --bogus (see 'netabase export --help')"
        ),
    }
    for args, message in cases.items():
        status, out, err = nb(capsys, *args)
        assert (status, err.strip()) == (2, message), args
        assert out == ""
    with netabase.connect_sync(url, models=MODELS) as db:  # nothing was written
        assert not db.permissions.check("ann", "read", Order, 1)


def test_commands_that_need_a_database_never_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "shop"
    for args in (
        ("grant", f"lmdb://{missing}", "ann", "Order", "1", "read"),
        ("revoke", f"lmdb://{missing}", "ann", "Order", "1"),
        ("members", f"lmdb://{missing}", "staff"),
        ("dump", f"lmdb://{missing}", tmp_path / "out.jsonl"),
    ):
        status, _, err = nb(capsys, *args)
        assert status == 1, args
        assert (
            err.strip() == f"error: no netabase database at {missing} (nothing there was changed)"
        )
    assert not (tmp_path / "typo").exists() and not (tmp_path / "out.jsonl").exists()


# -- grant / revoke / members ----------------------------------------------------------------


def test_grant_revoke_and_members_change_what_check_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shop(tmp_path)
    assert nb(capsys, "grant", url, "staff", "Order", "3", "write") == (
        0,
        "granted write on Order 3 to staff\n",
        "",
    )
    status, out, err = nb(capsys, "members", url, "staff", "--add", "ann", "--add", "bob")
    assert (status, out, err) == (0, "ann\nbob\n", "staff: 2 direct member(s)\n")
    assert nb(capsys, "check", url, "bob", "write", "Order", "3")[0] == 0
    status, out, _ = nb(capsys, "members", url, "staff", "--remove", "bob")
    assert (status, out) == (0, "ann\n")
    assert nb(capsys, "check", url, "bob", "write", "Order", "3")[0] == 3
    assert nb(capsys, "check", url, "ann", "write", "Order", "3")[0] == 0
    assert nb(capsys, "revoke", url, "staff", "Order", "3", "read")[1] == (
        "staff held read on Order 3 directly: nothing revoked\n"
    )
    assert nb(capsys, "revoke", url, "staff", "Order", "3")[1] == (
        "revoked 1 role(s) of staff on Order 3\n"
    )
    assert nb(capsys, "check", url, "ann", "read", "Order", "3")[0] == 3
    status, _, err = nb(capsys, "members", url, "ann", "--add", "staff")  # a membership cycle
    assert status == 1 and "cycle" in err and len(err.splitlines()) == 1


# -- dump / restore --------------------------------------------------------------------------


def test_dump_then_restore_reproduces_records_grants_and_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = graph(tmp_path), f"lmdb://{tmp_path / 'copy'}"
    backup, again = tmp_path / "backup.jsonl", tmp_path / "again.jsonl"
    status, _, err = nb(capsys, "dump", source, backup, "--models", GRAPH)
    assert status == 0, err
    assert "dumped 9 records of 3 models, 3 grants and 2 memberships" in err
    lines = [json.loads(line) for line in backup.read_text().splitlines()]
    assert lines[0] == {
        "format": "netabase-dump",
        "version": 1,
        "models": ["Team", "Person", "Folder"],
    }
    assert lines[-1] == {"end": {"records": 9, "grants": 3, "members": 2}}
    status, _, err = nb(capsys, "restore", target, backup, "--models", GRAPH, "--batch", "1")
    assert status == 0, err
    assert "restored 9 records (Team 2, Person 3, Folder 4)" in err
    assert everything(target, GRAPH_MODELS) == everything(source, GRAPH_MODELS)
    assert answers(target) == answers(source)
    assert any(answers(source)) and not all(answers(source))
    assert nb(capsys, "dump", target, again, "--models", GRAPH)[0] == 0
    assert again.read_text() == backup.read_text()  # grants and memberships too, in order


def test_values_json_has_no_type_for_survive_a_dump_and_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = f"lmdb://{tmp_path / 'a'}", f"lmdb://{tmp_path / 'b'}"
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    reading = Reading(
        ("north", -3), uuid.UUID(int=7), decimal.Decimal("19.990"), datetime.time(7, 8, 9, 10),
        when, b"\x00\xff", frozenset({"a", "b"}),
    )  # fmt: skip
    with netabase.connect_sync(source, models=[Reading]) as db:
        db.store(Reading).insert(reading)
        db.permissions.grant("ann", Reading, ("north", -3), "read")
    spec = f"{HERE}:Reading"
    assert nb(capsys, "dump", source, tmp_path / "r.jsonl", "--models", spec)[0] == 0
    assert nb(capsys, "restore", target, tmp_path / "r.jsonl", "--models", spec)[0] == 0
    assert everything(target, [Reading]) == {"Reading": [reading]}
    status, out, _ = nb(
        capsys, "check", target, "ann", "read", "Reading", '["north", -3]', "-m", spec
    )
    assert status == 0 and "'ann' holds 'read' on Reading ('north', -3)" in out
    text = (tmp_path / "r.jsonl").read_text().replace('"19.990"', "19.99")
    (tmp_path / "bad.jsonl").write_text(text)
    status, _, err = nb(
        capsys, "restore", f"lmdb://{tmp_path / 'c'}", tmp_path / "bad.jsonl", "-m", spec
    )
    assert status == 1
    assert "bad.jsonl:2: Reading key ['north', -3] does not fit the model: amount: expected " in err
    assert "Decimal text, got float 19.99" in err


def test_restore_checks_every_line_first_and_refuses_a_store_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = shop(tmp_path)
    backup = tmp_path / "shop.jsonl"
    assert nb(capsys, "dump", source, backup)[0] == 0
    lines = backup.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    broken = json.loads(lines[3])
    broken["record"]["name"] = 7
    bad.write_text("\n".join([lines[0], lines[1], json.dumps(broken), "{oops", *lines[4:]]) + "\n")
    fresh = tmp_path / "fresh"
    status, _, err = nb(capsys, "restore", f"lmdb://{fresh}", bad)
    assert status == 1
    assert err.splitlines() == [
        f"{bad}:3: Customer key 'c2' does not fit the model: name: expected str, got int 7",
        f"{bad}:4: malformed JSON: Expecting property name enclosed in double quotes at column 2",
        "error: 2 bad line(s); nothing restored",
    ]
    assert not fresh.exists()
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(lines[:-1]) + "\n")
    status, _, err = nb(capsys, "restore", f"lmdb://{fresh}", truncated)
    assert status == 1 and "truncated dump: no end line" in err and not fresh.exists()
    reordered = tmp_path / "reordered.jsonl"  # an order before the customer it links to
    reordered.write_text("\n".join([lines[0], lines[-2], *lines[1:-2], lines[-1]]) + "\n")
    status, _, err = nb(capsys, "restore", f"lmdb://{fresh}", reordered)
    assert status == 1 and "comes after Order records that link to Customer" in err
    status, _, err = nb(capsys, "restore", source, backup)
    assert status == 1
    assert err.strip() == (
        f"error: {source} is not empty (it holds 5 Customer, 1 Product, 8 Order records); "
        "restore into an empty database, or pass --force to write over what is there"
    )
    assert nb(capsys, "restore", source, backup, "--force")[0] == 0


def test_dump_and_members_read_principals_back_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grant key is principal | object id | role: an id whose digest starts with 0xff must
    not read as part of the principal, and group "g" must not list the members of "g\\x00h"."""
    info = netabase.info_of(Order)
    assert info is not None
    key = next(i for i in range(10_000) if object_id("Order", info.encode_key(i))[1] == 0xFF)
    url = shop(tmp_path)
    with netabase.connect_sync(url, models=MODELS) as db:
        db.permissions.grant("u", Order, key, "read")
        db.permissions.grant("u\x00v", Order, 1, "write")
        db.permissions.add_member("g", "ann")
        db.permissions.add_member("g\x00h", "bob")
    assert nb(capsys, "members", url, "g")[1] == "ann\n"
    assert nb(capsys, "dump", url, tmp_path / "d.jsonl")[0] == 0
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    found = [line["grant"] for line in lines if "grant" in line]
    assert sorted(found, key=lambda grant: grant["principal"]) == [
        {"principal": "u", "model": "Order", "key": key, "role": "read"},
        {"principal": "u\x00v", "model": "Order", "key": 1, "role": "write"},
    ]
    assert [line["member"] for line in lines if "member" in line] == [
        {"group": "g", "member": "ann"},
        {"group": "g\x00h", "member": "bob"},
    ]
    status, _, err = nb(capsys, "dump", url, tmp_path / "p.jsonl", "-m", "netabase.demo:Product")
    assert status == 1 and "error: a grant to 'u" in err
    assert err.endswith("is on model 'Order', which --models does not name; nothing was written\n")
    assert not list(tmp_path.glob("*p.jsonl*"))


def test_restore_names_what_is_wrong_with_each_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = {"format": "netabase-dump", "version": 1, "models": ["Customer", "Product", "Order"]}
    lines = [
        header,
        [1, 2],
        {"model": "Order", "record": 5},
        {"grant": {"principal": "a"}},
        {"member": {"group": "", "member": "b"}},
        {"grant": {"principal": "a", "model": "Order", "key": "x", "role": "read"}},
        {"grant": {"principal": "a", "model": "Nope", "key": 1, "role": "read"}},
        {"grant": {"principal": "a", "model": "Order", "key": 1, "role": "boss"}},
        {"end": {"records": 0, "grants": 0, "members": 0}},
        header,
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    status, _, err = nb(capsys, "restore", f"lmdb://{tmp_path / 'db'}", path)
    assert status == 1 and not (tmp_path / "db").exists()
    assert err.splitlines() == [
        f"{path}:2: not a line of a netabase dump",
        f"{path}:3: the Order record must be a JSON object, got 5",
        f"{path}:4: grant: missing field 'model'",
        f"{path}:5: membership: group must be a non-empty str, got ''",
        f"{path}:6: grant: expected int, got str 'x'",
        f"{path}:7: grant: model 'Nope' is not among --models",
        f"{path}:8: grant: unknown action or role 'boss'; known: read, write, admin",
        f"{path}:10: line after the end line",
        "error: 8 bad line(s); nothing restored",
    ]
    path.write_text(json.dumps({**header, "version": 2}) + "\n")
    assert nb(capsys, "restore", "memory://", path)[2].splitlines()[0] == (
        f"{path}:1: dump format 2; this netabase reads version 1"
    )
    path.write_text("")
    assert nb(capsys, "restore", "memory://", path)[2].splitlines()[0] == (
        f"{path}:1: no header line: not a netabase dump"
    )
    path.write_bytes(json.dumps(header).encode() + b"\n\xff\xfe\n")
    assert nb(capsys, "restore", "memory://", path)[2].splitlines()[0] == (
        f"{path}:2: not UTF-8 text"
    )


def test_files_that_cannot_be_written_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shop(tmp_path)
    (tmp_path / "folder").mkdir()
    assert nb(capsys, "dump", url, tmp_path / "folder") == (
        2,
        "",
        f"error: cannot write {tmp_path / 'folder'}: it is a directory\n",
    )
    assert nb(capsys, "export", url, "Order", "-o", tmp_path / "folder") == (
        1,
        "",
        f"error: {tmp_path / 'folder'}: Is a directory\n",
    )


def test_a_required_link_cycle_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"lmdb://{tmp_path / 'chain'}"
    with netabase.connect_sync(url, models=[Chain]) as db:
        db.store(Chain).insert(Chain(1, 1))
    status, _, err = nb(capsys, "dump", url, tmp_path / "c.jsonl", "--models", f"{HERE}:Chain")
    assert status == 1
    assert err.startswith("error: Chain.prev is a required link inside a link cycle (Chain)")
    assert not list(tmp_path.glob("*c.jsonl*"))


def tickets(url: str, titles: list[str]) -> list[int]:
    with netabase.connect_sync(url, models=[Ticket, Memo]) as db:
        return [db.store(Ticket).insert(Ticket(title)).id for title in titles]


def test_restore_keeps_generated_keys_of_removed_records_unused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = f"lmdb://{tmp_path / 'a'}", f"lmdb://{tmp_path / 'b'}"
    assert tickets(source, ["a", "b", "c"]) == [1, 2, 3]
    with netabase.connect_sync(source, models=[Ticket, Memo]) as db:
        db.store(Ticket).remove(3)
        db.store(Memo).insert(Memo("str keys have no counter"))
    spec, backup = AUTO, tmp_path / "t.jsonl"
    assert nb(capsys, "dump", source, backup, "--models", spec)[0] == 0
    lines = [json.loads(line) for line in backup.read_text().splitlines()]
    (counter,) = [line["keys"] for line in lines if "keys" in line]
    assert counter["model"] == "Ticket" and counter["last"] >= 3
    assert lines[-2] == {"keys": counter}
    assert lines[-1] == {"end": {"records": 3, "grants": 0, "members": 0, "keys": 1}}
    status, _, err = nb(capsys, "restore", target, backup, "--models", spec)
    assert status == 0, err
    (key,) = tickets(target, ["d"])
    assert key > counter["last"] >= 3
    assert nb(capsys, "dump", target, tmp_path / "again.jsonl", "--models", spec)[0] == 0
    again = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert next(line["keys"]["last"] for line in again if "keys" in line) >= key


def test_a_dump_without_keys_lines_still_restores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dumps written before the counters were: keys go on past the highest one restored."""
    source, target = f"lmdb://{tmp_path / 'a'}", f"lmdb://{tmp_path / 'b'}"
    tickets(source, ["a", "b", "c"])
    spec, backup = AUTO, tmp_path / "t.jsonl"
    assert nb(capsys, "dump", source, backup, "--models", spec)[0] == 0
    lines = [json.loads(line) for line in backup.read_text().splitlines()]
    old = [line for line in lines if "keys" not in line]
    old[-1] = {"end": {"records": 3, "grants": 0, "members": 0}}
    assert len(old) == len(lines) - 1
    backup.write_text("".join(json.dumps(line) + "\n" for line in old))
    status, _, err = nb(capsys, "restore", target, backup, "--models", spec)
    assert status == 0, err
    assert "restored 3 records (Ticket 3)" in err
    assert tickets(target, ["d"]) == [4]


def test_restore_refuses_bad_keys_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = {"format": "netabase-dump", "version": 1, "models": ["Ticket", "Memo"]}
    lines = [
        header,
        {"model": "Ticket", "record": {"title": "a", "id": 1}},
        {"keys": {"model": "Nope", "last": 3}},
        {"keys": {"model": "Memo", "last": 3}},
        {"keys": {"model": "Ticket", "last": "3"}},
        {"keys": {"model": "Ticket", "last": -1}},
        {"keys": {"model": "Ticket", "last": True}},
        {"keys": {"model": "Ticket"}},
        {"keys": {"model": "Ticket", "last": 2**2100}},
        {"keys": [1]},
        {"keys": {"model": "Ticket", "last": 3}},
        {"keys": {"model": "Ticket", "last": 4}},
        {"end": {"records": 1, "grants": 0, "members": 0, "keys": 2}},
    ]
    path, url = tmp_path / "k.jsonl", f"lmdb://{tmp_path / 'db'}"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    status, _, err = nb(capsys, "restore", url, path, "--models", AUTO)
    assert status == 1 and not (tmp_path / "db").exists()
    assert err.splitlines() == [
        f"{path}:3: keys: model 'Nope' is not among --models",
        f"{path}:4: keys: Memo has no generated int keys (no `int = netabase.auto()` key)",
        f"{path}:5: keys: Ticket: last must be a whole number >= 0, got '3'",
        f"{path}:6: keys: Ticket: last must be a whole number >= 0, got -1",
        f"{path}:7: keys: Ticket: last must be a whole number >= 0, got True",
        f"{path}:8: keys: missing field 'last'",
        f"{path}:9: keys: Ticket: last is not a possible key: bad key: integer "
        "1455428565004863093618902384493306497... is outside the 64-bit range msgpack can store",
        f"{path}:10: keys: expected an object with model and last, got [1]",
        f"{path}:12: keys: a second keys line for Ticket",
        "error: 9 bad line(s); nothing restored",
    ]
    del lines[2:10], lines[3]
    lines[-1] = {"end": {"records": 1, "grants": 0, "members": 0}}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    status, _, err = nb(capsys, "restore", url, path, "--models", AUTO)
    assert status == 1 and not (tmp_path / "db").exists()
    assert err.splitlines()[0] == (
        f"{path}:4: end line counts {{'records': 1, 'grants': 0, 'members': 0}} but the file "
        "holds {'records': 1, 'grants': 0, 'members': 0, 'keys': 1}"
    )


mentors = st.lists(st.integers(0, 11), min_size=12, max_size=12)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mentor=mentors,
    friends=st.lists(st.lists(st.integers(0, 11), max_size=3), min_size=12, max_size=12),
    batch=st.integers(1, 5),
)
def test_any_self_link_graph_survives_a_dump_and_restore(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    mentor: list[int],
    friends: list[list[int]],
    batch: int,
) -> None:
    """Cycles, self-references and shared targets, restored in batches that split them."""
    tmp = tmp_path_factory.mktemp("graph")
    source, target = f"lmdb://{tmp / 'a'}", f"lmdb://{tmp / 'b'}"
    people = [
        Person(i, f"p{i}", "red", mentor=m if m % 3 else None, friends=tuple(dict.fromkeys(f)))
        for i, (m, f) in enumerate(zip(mentor, friends, strict=True))
    ]
    with netabase.connect_sync(source, models=[Team, Person]) as db:
        db.store(Team).insert(Team("red"))
        db.store(Person).insert_many(people)  # one batch: links inside it may form cycles
    spec = f"{HERE}:Team,Person"
    assert nb(capsys, "dump", source, tmp / "d.jsonl", "--models", spec)[0] == 0
    status, _, err = nb(
        capsys, "restore", target, tmp / "d.jsonl", "--models", spec, "--batch", str(batch)
    )
    assert status == 0, err
    assert everything(target, [Team, Person]) == everything(source, [Team, Person])


# -- bench -----------------------------------------------------------------------------------


def test_bench_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "netabase._bench", raising=False)
    monkeypatch.delattr(netabase, "_bench", raising=False)
    monkeypatch.setitem(sys.modules, "aiosqlite", None)  # import aiosqlite now fails
    assert nb(capsys, "bench") == (
        1,
        "",
        "error: netabase bench needs the bench extra: pip install 'netabase[bench]'\n",
    )


def test_bench_runs_against_the_given_url_or_a_temporary_lmdb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"lmdb://{tmp_path / 'bench'}"
    tiny = ("--clients", "2", "--ops", "10", "--records", "50")
    status, out, err = nb(capsys, "bench", url, *tiny)
    assert status == 0, err
    assert f"2clientson{url}" in "".join(out.split())  # the title may wrap
    for phase in ("bulk load", "point gets", "durable inserts"):
        assert phase in out
    with netabase.connect_sync(url, models=[BenchItem]) as db:
        assert db.store(BenchItem).count() == 50 + 2 * 1  # loaded, then one insert per client
    status, out, _ = nb(capsys, "bench", *tiny)
    assert status == 0 and "2 clients on a temporary LMDB" in out
    assert nb(capsys, "bench", "lmdb://x?color=red")[0] == 2
