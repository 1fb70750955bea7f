"""SIGKILL a process writing to LMDB at random points; every acknowledged write must survive."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import netabase
from netabase.testing import check_integrity

from ..link_models import LINK_MODELS, Client, Purchase

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8


def _run_and_kill(path: Path, seed: int, kill_after: int) -> list[str]:
    """Start a writer, let it acknowledge ``kill_after`` writes, SIGKILL it, return all acks."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.writer_child", str(path), str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acks: list[str] = []
    for line in child.stdout:
        acks.append(line.strip())
        if len(acks) >= kill_after:
            break
    child.send_signal(signal.SIGKILL)
    rest, errors = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, errors
    acks.extend(line.strip() for line in rest.splitlines() if line.strip())
    return acks


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    clients: set[str] = set()
    purchases: dict[int, str] = {}
    for round_number in range(ROUNDS):
        acks = _run_and_kill(path, round_number + 1, rng.randint(50, 1500))
        for ack in acks:
            kind, key, *rest = ack.split()
            if kind == "C":
                clients.add(key)
            else:
                purchases[int(key)] = rest[0]
        async with netabase.open(f"lmdb://{path}", models=LINK_MODELS) as db:
            stored_clients = {c.id async for c in db.store(Client).scan()}
            assert clients <= stored_clients, f"round {round_number}: lost clients"
            found = await db.store(Purchase).get_many(list(purchases))
            lost = [k for k, p in zip(purchases, found, strict=True) if p is None]
            assert not lost, f"round {round_number}: lost {len(lost)} acknowledged purchases"
            assert all(p is not None and p.client == purchases[p.id] for p in found)
            assert await check_integrity(db) == []
    print(f"kill rounds={ROUNDS} acknowledged clients={len(clients)} purchases={len(purchases)}")
