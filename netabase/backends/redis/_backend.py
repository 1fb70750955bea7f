"""``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``: one Redis server shared by many processes.

Every space lives under ``nb:{name}:`` (see `_scripts` for the layout), so several
netabase databases can share a server. ``read``, ``scan`` and ``apply`` are each one Lua script,
hence one snapshot and one round trip, and ``apply`` checks its conditions and writes in one
atomic step on the server. Requests travel over trio sockets (`_client`), from a pool of
connections that reopens after an outage: while the server is down every call raises
`BackendUnavailable` at once (or when the ``timeout`` option runs out), and the first call after
it comes back reconnects. Durability is the server's: with ``appendfsync always`` an
acknowledged write survives a server crash.

The password never appears in URLs shown in messages, reprs or statistics.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import trio

from ..._errors import InvalidURL
from .._base import (
    EXISTS,
    ApplyResult,
    Backend,
    Condition,
    Delete,
    Expect,
    Op,
    Stamped,
    WriteBatch,
    check_key_sizes,
)
from .._url import BackendURL, redact_url
from ._client import Client, Connection
from ._scripts import SCRIPTS

DEFAULT_PORT = 6379
DEFAULT_POOL = 8
MAX_POOL = 10_000
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_TIMEOUT = 4.0  # below the default 5 s request deadline


_ENCODE_USERINFO = "a '/', '?' or '#' in a user name or password must be percent-encoded"
"""Said instead of the parser's message, which would quote a piece of the password."""


class RedisBackend(Backend):
    """Spaces stored on a Redis server under ``nb:{name}:``; see the module docstring."""

    def __init__(
        self,
        url: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        name: str = "default",
        pool_size: int = DEFAULT_POOL,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(redact_url(url))
        self.host = host
        self.port = port
        self.db = db
        self.name = name
        self.prefix = f"nb:{name}:".encode()
        self._client = Client(
            self.url,
            host,
            port,
            db=db,
            username=username,
            password=password,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )

    @property
    def timeout(self) -> float:
        """Seconds a request may take before it raises `BackendUnavailable`."""
        return self._client.timeout

    @property
    def script_reloads(self) -> int:
        """Scripts sent again after a server restart made it forget them."""
        return self._client.script_reloads

    @classmethod
    def from_url(cls, url: BackendURL) -> RedisBackend:
        """Build from ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]?name=&pool=&...``."""
        shown = redact_url(url.raw)
        url.check_options({"name", "pool", "connect_timeout", "timeout"})  # errors redact too
        head = url.raw.partition("?")[0]
        try:
            parts = urllib.parse.urlsplit(head)
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            after_netloc = re.split(r"[/?#]", head.partition("://")[2], maxsplit=1)[1:]
            if "@" in "".join(after_netloc):  # the netloc ended inside the userinfo
                raise InvalidURL(shown, f"bad host or port; {_ENCODE_USERINFO}") from None
            raise InvalidURL(shown, f"bad host or port: {exc}") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise InvalidURL(shown, f"the database must be a number, got {path!r}")
        name = url.option("name", "default")
        if not name or any(c in name for c in ": \t\r\n"):
            raise InvalidURL(shown, f"option name={name!r} must be non-empty without ':' or spaces")
        return cls(
            url.raw,
            parts.hostname or "127.0.0.1",
            port,
            db=int(path or 0),
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            name=name,
            pool_size=url.int_option("pool", DEFAULT_POOL, minimum=1, maximum=MAX_POOL),
            connect_timeout=url.float_option("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            timeout=url.float_option("timeout", DEFAULT_TIMEOUT),
        )

    # lifecycle

    async def start(self, spaces: Iterable[str]) -> None:
        await self._client.load(list(SCRIPTS.values()))

    async def aclose(self) -> None:
        await self._client.aclose()

    # primitives

    async def read(self, space: str, keys: Sequence[bytes]) -> tuple[int, list[bytes | None]]:
        version, values = await self._client.eval(SCRIPTS["read"], (self.prefix, space, *keys))
        return int(version or 0), values

    async def scan(
        self,
        space: str,
        lo: bytes = b"",
        hi: bytes | None = None,
        *,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        if limit == 0 or (hi is not None and hi <= lo):
            await trio.lowlevel.checkpoint()
            return []
        keys, values = await self._client.eval(
            SCRIPTS["scan"],
            (
                self.prefix,
                space,
                lo,
                b"0" if hi is None else b"1",
                hi or b"",
                -1 if limit is None else limit,
                b"1" if reverse else b"0",
            ),
        )
        return list(zip(keys, values, strict=True))

    async def apply(self, batches: Sequence[WriteBatch]) -> ApplyResult:
        check_key_sizes(batches)
        payload = msgpack.packb(
            [
                [[_op(op) for op in batch.ops], [_condition(c) for c in batch.expects]]
                for batch in batches
            ],
            use_bin_type=False,  # Redis's cmsgpack predates the bin types
        )
        failed, flat_versions = await self._client.eval(
            SCRIPTS["apply"],
            (self.prefix, payload, str(secrets.randbelow(1 << 20) + 1)),
            writes=True,
        )
        triples = zip(flat_versions[::3], flat_versions[1::3], flat_versions[2::3], strict=True)
        versions = {space.decode(): (int(before), int(after)) for space, before, after in triples}
        return ApplyResult(tuple(None if f == 0 else f - 1 for f in failed), versions)

    async def version(self, space: str) -> int:
        version = await self._client.command("HGET", self.prefix + b"versions", space)
        return int(version or 0)

    async def count(self, space: str) -> int:
        return int(await self._client.command("ZCARD", self.prefix + space.encode() + b":i"))

    async def clear(self) -> None:
        """Delete every key of this database's namespace (tests and ``netabase`` tooling)."""

        async def work(connection: Connection) -> None:
            cursor = b"0"
            while True:
                cursor, found = await connection.execute(
                    "SCAN", cursor, "MATCH", _glob_escaped(self.prefix) + b"*", "COUNT", 1000
                )
                if found:
                    await connection.execute("UNLINK", *found)
                if cursor == b"0":
                    return

        await self._client.call(work, "clear")

    def statistics(self) -> dict[str, int]:
        """Connections opened so far and scripts reloaded after a server restart."""
        return {"connects": self._client.connects, "script_reloads": self._client.script_reloads}


def _op(op: Op) -> list[Any]:
    if isinstance(op, Delete):
        return [1, op.space, op.key]
    return [2 if op.stamp else 0, op.space, op.key, op.value]


def _condition(condition: Condition) -> list[Any]:
    if isinstance(condition, Expect):
        if condition.value is None:
            return [0, condition.space, condition.key]
        if condition.value is EXISTS:
            return [1, condition.space, condition.key]
        value = condition.value
        assert isinstance(value, bytes)
        return [
            4 if isinstance(value, Stamped) else 2,
            condition.space,
            condition.key,
            bytes(value),
        ]
    lo, hi = condition.bounds()
    return [3, condition.space, lo, hi or b"", sorted(condition.keys)]


def _glob_escaped(text: bytes) -> bytes:
    """``text`` matched literally by SCAN MATCH (a name may hold ``*``, ``?`` or ``[``)."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", text)
