"""A private redis-server does not outlive a test process that is killed (SIGTERM, SIGKILL)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

CHILD = """
import os, signal, sys
from netabase.testing import RedisServer
server = RedisServer()
server.start()
print(server.port, server.process.pid, flush=True)
os.kill(os.getpid(), int(sys.argv[1]))
"""


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_redis_server_dies_with_the_process_that_started_it(sig: signal.Signals) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(int(sig))], capture_output=True, text=True, check=False
    )
    assert child.returncode == -sig, child.stderr
    port, pid = map(int, child.stdout.split())
    deadline = time.monotonic() + 20
    while _accepts(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _accepts(port)
    if alive:
        subprocess.run(["kill", "-9", str(pid)], check=False)  # do not leave it behind
    assert not alive, f"redis-server (pid {pid}) on port {port} outlived its killed parent"
