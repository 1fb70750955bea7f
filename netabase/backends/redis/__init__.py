"""``redis://``: a Redis server shared by many processes (`RedisBackend`).

`_client` speaks RESP over trio sockets from a pool, `_scripts` holds the Lua scripts that make
each call one atomic step, and `_backend` maps the protocol onto them.
"""

from ._backend import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    MAX_POOL,
    RedisBackend,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_POOL",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "MAX_POOL",
    "RedisBackend",
]
