"""The ``netabase`` command, run as a subprocess against temporary LMDB stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import netabase
from netabase.demo import MODELS, Customer, Order, Product
from netabase.testing import free_port


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netabase", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def seeded(tmp_path: Path) -> str:
    url = f"lmdb://{tmp_path / 'shop'}"
    with netabase.connect_sync(url, models=MODELS) as db:
        db.store(Customer).insert_many(Customer(f"c{i}", f"C{i}", f"c{i}@x") for i in range(30))
        db.store(Product).insert(Product("p1", "Pen", 150))
        db.store(Order).insert_many(Order(i, f"c{i % 30}", ("p1",), 150) for i in range(40))
    return url


def test_demo_runs_the_workload_and_prints_a_summary(tmp_path: Path) -> None:
    result = cli("demo", "--seconds", "0.5", "--clients", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "orders stored" in result.stdout and "Order" in result.stdout
    with netabase.connect_sync(f"lmdb://{tmp_path / 'shop.db'}", models=MODELS) as db:
        assert db.store(Customer).count() == 1000


def test_inspect_shows_models_and_counts(tmp_path: Path) -> None:
    result = cli("inspect", seeded(tmp_path), "--models", "netabase.demo:Customer,Order,Product")
    assert result.returncode == 0, result.stderr
    assert "customer->Customer" in result.stdout
    assert "40" in result.stdout and "30" in result.stdout


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    source = seeded(tmp_path)
    target = f"lmdb://{tmp_path / 'copy'}"
    files = {model: tmp_path / f"{model}.jsonl" for model in ("Customer", "Product", "Order")}
    for model, path in files.items():
        result = cli("export", source, model, "-o", path)
        assert result.returncode == 0, result.stderr
    assert len(files["Order"].read_text().splitlines()) == 40
    first = json.loads(files["Order"].read_text().splitlines()[0])
    assert first == {"id": 0, "customer": "c0", "products": ["p1"], "total_cents": 150}
    for model, path in files.items():  # targets before the records that link to them
        result = cli("import", target, model, path, "--batch", "7")
        assert result.returncode == 0, result.stderr
    with netabase.connect_sync(source, models=MODELS) as a:
        expected = list(a.store(Order).scan())
    with netabase.connect_sync(target, models=MODELS) as b:
        assert list(b.store(Order).scan()) == expected


def test_bad_lines_are_reported_by_number_and_nothing_is_written(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    path = tmp_path / "orders.jsonl"
    path.write_text(
        '{"id": 100, "customer": "c1"}\n{"id": 101, "customer": \n\n{"id": "x", "customer": "c1"}\n'
    )
    result = cli("import", url, "Order", path)
    assert result.returncode == 1
    assert f"{path}:2: malformed JSON" in result.stderr
    assert f"{path}:4: does not fit Order" in result.stderr
    assert "nothing imported" in result.stderr and "Traceback" not in result.stderr
    with netabase.connect_sync(url, models=MODELS) as db:
        assert db.store(Order).get(100) is None


def test_values_of_the_wrong_json_type_are_reported_not_converted(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    path = tmp_path / "products.jsonl"
    path.write_text(
        '{"sku": 42, "title": true, "price_cents": 19.99}\n'
        '{"sku": "p2", "title": "Ink"}\n'
        '{"sku": "p3", "title": "Pad", "price_cents": 300}\n'
    )
    result = cli("import", url, "Product", path)
    assert result.returncode == 1
    assert f"{path}:1: does not fit Product: sku: expected str, got int 42" in result.stderr
    assert "price_cents: expected int, got float 19.99" in result.stderr
    assert f"{path}:2: does not fit Product: missing field 'price_cents'" in result.stderr
    with netabase.connect_sync(url, models=MODELS) as db:
        assert db.store(Product).get_many(["42", "p2", "p3"]) == [None, None, None]
    coerced = cli("check", url, "ann", "read", "Order", "7.9")
    assert coerced.returncode == 2 and "expected int, got float 7.9" in coerced.stderr


def test_reading_commands_never_create_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "shop"
    for args in (
        ("inspect", f"lmdb://{missing}"),
        ("export", f"lmdb://{missing}", "Order"),
        ("check", f"lmdb://{missing}", "ann", "read", "Order", "1"),
    ):
        result = cli(*args)
        assert result.returncode == 1, args
        assert (
            result.stderr.strip()
            == f"error: no netabase database at {missing} (nothing there was changed)"
        )
    assert not (tmp_path / "typo").exists()
    nowhere = cli("export", seeded(tmp_path), "Order", "-o", tmp_path / "no" / "dir.jsonl")
    assert nowhere.returncode == 2 and "Traceback" not in nowhere.stderr


def test_a_broken_link_fails_its_batch_atomically(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    path = tmp_path / "orders.jsonl"
    lines = [{"id": 200 + i, "customer": "c1"} for i in range(5)]
    lines[3]["customer"] = "ghost"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cli("import", url, "Order", path, "--batch", "3")
    assert result.returncode == 1
    assert f"{path}:4:" in result.stderr and "'ghost'" in result.stderr
    assert "lines 4-5 not written" in result.stderr
    with netabase.connect_sync(url, models=MODELS) as db:
        stored = db.store(Order).get_many(range(200, 205))
        assert [o is not None for o in stored] == [True, True, True, False, False]


def test_unknown_model_and_unreachable_url_are_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "c1", "name": "n", "email": "e"}\n')
    unknown = cli("import", f"lmdb://{tmp_path / 'db'}", "Shopper", path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "error: unknown model 'Shopper'; known: Customer, Product, Order"
    )
    unreachable = cli("import", f"redis://127.0.0.1:{free_port()}/0", "Customer", path)
    assert unreachable.returncode == 1
    assert "unavailable" in unreachable.stderr and len(unreachable.stderr.splitlines()) == 1
    malformed = cli("inspect", "lmdb://x?color=red")
    assert malformed.returncode == 1 and "unknown option(s) color" in malformed.stderr
    missing_module = cli("inspect", "memory://", "--models", "no_such_module")
    assert missing_module.returncode == 2 and "no_such_module" in missing_module.stderr


def test_check_prints_the_explanation_and_exits_by_verdict(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    with netabase.connect_sync(url, models=MODELS) as db:
        db.permissions.add_member("staff", "ann")
        db.permissions.grant("staff", Order, 7, "write")
    allowed = cli("check", url, "ann", "read", "Order", "7")
    assert allowed.returncode == 0, allowed.stderr
    assert "staff" in allowed.stdout
    denied = cli("check", url, "bob", "read", "Order", "7")
    assert denied.returncode == 3 and "bob" in denied.stdout


def test_import_refuses_unknown_fields_and_deep_nesting(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    path = tmp_path / "orders.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(f'{{"id": 300, "customer": "c1", "extra": 1}}\n{{"id": 301, "x": {deep}}}\n')
    result = cli("import", url, "Order", path)
    assert result.returncode == 1
    assert f"{path}:1: does not fit Order: unknown field 'extra'" in result.stderr
    assert f"{path}:2: JSON nested too deeply" in result.stderr
    assert "Traceback" not in result.stderr
    with netabase.connect_sync(url, models=MODELS) as db:
        assert db.store(Order).get(300) is None
