"""RESP2 over trio sockets, parsed by hiredis: a connection, a small pool, and the `Client`.

redis-py's clients are sync or asyncio-only, and driving them from trio costs a thread hop per
request. Speaking the protocol directly on a trio `SocketStream` keeps every request on the trio
thread; hiredis (redis-py's own fast parser) does the parsing. See
``benchmarks/redis_transport.py`` for the comparison that chose this design. `Client` puts
the pool behind the backend's timeout and its Lua scripts, and reports every failure as
`BackendUnavailable`.

Transport failures (refused connection, reset, EOF, a reply that misses its deadline) raise
`TransportError`; an error reply from the server raises `ServerError`. A connection that saw a
failure or was cancelled mid-request is closed, never returned to the pool, so a late reply can
never be read as the answer to a later request.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import hiredis
import trio

from ..._errors import BackendUnavailable
from ._scripts import Script

T = TypeVar("T")

Arg = str | int | float | bytes
Reply = Any

_RECEIVE_SIZE = 256 * 1024


class TransportError(Exception):
    """The server could not be reached or the connection broke."""


class ConnectError(TransportError):
    """No connection could be made; nothing was sent."""


class ServerError(Exception):
    """The server answered a command with an error reply."""

    @property
    def code(self) -> str:
        """The error's first word: ``NOSCRIPT``, ``WRONGTYPE``, ``ERR``..."""
        return str(self).split(" ", 1)[0]


class _ReplyError(Exception):
    """What hiredis builds for an error reply; converted to `ServerError` on the way out."""


class Connection:
    """One socket to the server; callers must not share it between concurrent requests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader(replyError=_ReplyError)
        self.broken = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        setup: Sequence[Sequence[Arg]] = (),
    ) -> Connection:
        """Connect and run the ``setup`` commands (AUTH, SELECT); errors are transport errors."""
        try:
            with trio.fail_after(connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise ConnectError(f"no connection within {connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(exc.strerror or str(exc)) from None
        connection = cls(stream)
        if setup:
            try:
                with trio.fail_after(connect_timeout):
                    await connection.pipeline(setup)
            except BaseException as exc:
                await connection.aclose()
                if isinstance(exc, trio.TooSlowError):
                    raise ConnectError("no reply to the connection setup") from None
                if isinstance(exc, TransportError | ServerError):
                    raise ConnectError(f"connection setup failed: {exc}") from None
                raise
        return connection

    async def aclose(self) -> None:
        self.broken = True
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    def stale(self) -> bool:
        """Whether an idle connection has something to read: with no request outstanding that
        can only be the server closing it (a restart, an idle timeout), so it must not be used."""
        try:
            readable, _, _ = select.select([self._stream.socket.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def execute(self, *args: Arg) -> Reply:
        """Send one command and return its reply."""
        (reply,) = await self.pipeline((args,))
        return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        """Send every command in one write, then read one reply per command, in order.

        Every reply is read before an error reply raises `ServerError`, so the connection stays
        usable after a server error.
        """
        if self.broken:
            raise TransportError("connection already closed")
        pack: Any = hiredis.pack_command  # its stub types the argument as a 1-tuple
        payload = b"".join(pack(tuple(command)) for command in commands)
        done = False
        try:
            await self._stream.send_all(payload)
            replies = [await self._reply() for _ in commands]
            done = True
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise TransportError(f"connection lost: {exc or type(exc).__name__}") from None
        except hiredis.ProtocolError as exc:
            raise TransportError(f"protocol error: {exc}") from None
        finally:
            if not done:
                # Cancelled or failed mid-request: a reply may still be on its way.
                self.broken = True
                with trio.CancelScope(shield=True):
                    await self._stream.aclose()
        for reply in replies:
            if isinstance(reply, _ReplyError):
                raise ServerError(str(reply))
        return replies

    async def _reply(self) -> Reply:
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            data = await self._stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise TransportError("the server closed the connection")
            reader.feed(data)
            reply = reader.gets()
        return reply


class Pool:
    """At most ``size`` connections, opened on demand and reopened after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int,
        connect_timeout: float,
        setup: Sequence[Sequence[Arg]] = (),
    ) -> None:
        self.host = host
        self.port = port
        self._connect_timeout = connect_timeout
        self._setup = tuple(tuple(command) for command in setup)
        self._idle: list[Connection] = []
        self._slots = trio.Semaphore(size)
        self._open: set[Connection] = set()
        self.connects = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Borrow a connection; it goes back to the pool only if the caller did not break it."""
        async with self._slots:
            connection = await self._checkout()
            try:
                yield connection
            finally:
                if connection.broken:
                    self._open.discard(connection)
                else:
                    self._idle.append(connection)

    async def _checkout(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.stale():
                return connection
            self._open.discard(connection)
            await connection.aclose()
        return await self._connect()

    async def _connect(self) -> Connection:
        connection = await Connection.open(
            self.host, self.port, connect_timeout=self._connect_timeout, setup=self._setup
        )
        self.connects += 1
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        """Close every connection, idle or borrowed."""
        connections, self._open = self._open, set()
        self._idle.clear()
        for connection in connections:
            await connection.aclose()


class Client:
    """A `Pool` to ``host:port`` (after AUTH and SELECT) whose every request runs under
    ``timeout`` and raises `BackendUnavailable` naming ``url`` when it fails."""

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        *,
        db: int,
        username: str | None,
        password: str | None,
        pool_size: int,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self.url = url
        self.where = f"{host}:{port}"
        self.timeout = timeout
        setup: list[tuple[Arg, ...]] = []
        if password is not None:
            setup.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            setup.append(("SELECT", db))
        self._pool = Pool(host, port, size=pool_size, connect_timeout=connect_timeout, setup=setup)
        self.script_reloads = 0

    @property
    def connects(self) -> int:
        return self._pool.connects

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def load(self, scripts: Sequence[Script]) -> None:
        """Send ``scripts`` to the server (connecting first, so an outage shows here)."""

        async def work(connection: Connection) -> None:
            await connection.pipeline([("SCRIPT", "LOAD", script.source) for script in scripts])

        await self.call(work, "connect")

    async def command(self, *args: Arg) -> Reply:
        async def work(connection: Connection) -> Reply:
            return await connection.execute(*args)

        return await self.call(work, str(args[0]))

    async def eval(self, script: Script, args: Sequence[Arg], *, writes: bool = False) -> Reply:
        async def work(connection: Connection) -> Reply:
            try:
                return await connection.execute("EVALSHA", script.sha, 0, *args)
            except ServerError as exc:
                if exc.code != "NOSCRIPT":
                    raise
            # The server restarted (or flushed its scripts): EVAL sends and caches it.
            self.script_reloads += 1
            return await connection.execute("EVAL", script.source, 0, *args)

        return await self.call(work, script.name, writes=writes)

    async def call(
        self, work: Callable[[Connection], Awaitable[T]], what: str, *, writes: bool = False
    ) -> T:
        """Run ``work`` on a borrowed connection under the timeout; failures become
        `BackendUnavailable` (a write's may or may not have been applied)."""
        where = self.where
        unknown = (
            "; the write may or may not have been applied (atomically, never in part)"
            if writes
            else ""
        )
        try:
            with trio.fail_after(self.timeout):
                async with self._pool.connection() as connection:
                    return await work(connection)
        except trio.TooSlowError:
            problem = f"{what} got no reply from {where} within {self.timeout:g}s{unknown}"
        except ConnectError as exc:
            problem = f"{what}: cannot connect to {where}: {exc}"
        except TransportError as exc:
            problem = f"{what} on {where}: {exc}{unknown}"
        except ServerError as exc:
            problem = f"{what} refused by {where}: {exc}"
        raise BackendUnavailable(self.url, problem)
