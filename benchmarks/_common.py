"""Shared helpers for the benchmark scripts: timing, sample records, ratio tables."""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

import netabase


@netabase.model(key="id")
@attrs.frozen
class Item:
    """A small record, like the ~112-byte baseline in shared/notes/ceilings.md."""

    id: str
    name: str
    email: str
    age: int
    active: bool
    score: float
    tags: tuple[str, ...]


def make_item(i: int) -> Item:
    return Item(
        f"item{i:07d}",
        f"Name {i}",
        f"user{i}@example.com",
        20 + i % 50,
        i % 2 == 0,
        i / 7,
        ("a", "b"),
    )


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The median of ``repeats`` runs of ``run`` (each returns ops/s)."""
    return statistics.median(run() for _ in range(repeats))


def rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


def table(title: str, rows: list[tuple[str, float, str]]) -> None:
    """Print ``(name, ops/s, note)`` rows."""
    print(f"\n{title}")
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>12,.0f} /s  {note}")


def ratio(ours: float, base: float, target: float | None = None) -> str:
    text = f"{ours / base:.2f}x"
    if target is not None:
        text += f" (target >= {target}x: {'met' if ours / base >= target else 'NOT met'})"
    return text


def scratch_dir(prefix: str) -> Path:
    """A temporary directory for benchmark databases, removed when the script exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
