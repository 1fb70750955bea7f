"""A throwaway ``redis-server`` on a free loopback port, for tests that need a real Redis.

Never the shared 6379: each server gets its own port and data directory, persists with AOF
(``appendfsync always``) so acknowledged writes survive a restart, and can be stopped and started
again on the same port to test outages.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dies_with_this_process(args: list[str]) -> list[str]:
    """Have the kernel kill the server when this process dies, even by SIGKILL (Linux).

    The parent-death signal fires when the starting *thread* ends, so it is asked for only from
    the main thread (a worker thread may end long before the process does).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return args
    return [setpriv, "--pdeathsig", "KILL", *args]


class RedisServer:
    """Start with `start`, stop with `stop` or `kill`, restart with `start` (same port and data)."""

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        port: int | None = None,
        password: str | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; install it (e.g. apt-get install -y redis-server)"
            )
        self.binary = binary
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="netabase-redis-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self.process is not None:
            return
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--protected-mode",
            "yes",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        process = subprocess.Popen(
            _dies_with_this_process(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        seen: list[bytes] = []
        for line in process.stdout:
            seen.append(line)
            if b"Ready to accept connections" in line:
                break
        else:
            process.wait()
            output = b"".join(seen).decode(errors="replace")
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{output}")
        process.stdout.close()
        self.process = process

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM)."""
        self._end(signal.SIGTERM)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(sig)
        process.send_signal(signal.SIGCONT)  # a paused server must wake up to exit
        process.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
