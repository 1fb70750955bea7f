"""Whole-database dump and restore for ``netabase dump`` / ``netabase restore``.

A dump is one JSON Lines file: a header naming the format version and the models in restore
order, every record of every model (model by model, link targets before the models linking to
them), every grant and group membership, the generated-key counter of each model with
``int = netabase.auto()`` keys (`netabase._key_blocks`), and an end line with the counts (a
file without it is truncated). Records are restored through ``insert_many`` in atomic
batches, so links, unique rules and validators are enforced as in the API.

Records of a model in a link cycle cannot all come after their targets. Such records are
written twice: first with the links inside the cycle cleared, then whole once every record
of the cycle exists. That needs those links to be clearable (optional or a collection); a
required single link inside a cycle is refused with `DumpError` when dumping or restoring,
before anything is written. (A model can link only to models defined before it, or to
itself, so today every cycle is a self-link; the ordering handles longer ones the same way.)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import attrs
import msgpack

from ._errors import NetabaseError
from ._keys import decode_element, encode_str, prefix_successor
from ._layout import GRANTS, MEMBERS, SCHEMA_SPACE
from ._layout import PERMISSION_META as META
from ._model import LinkInfo, ModelInfo
from .backends import Backend, Delete, Expect, Put, WriteBatch
from .backends._paging import scan_pages

FORMAT = "netabase-dump"
VERSION = 1
PAGE = 1000
RESTORING = b"restoring"
"""Key in the permission meta space held while a restore writes: a second restore, or one
after a restore that did not finish (killed, failed batch), sees it."""


class DumpError(NetabaseError):
    """A database that cannot be dumped or restored as asked, or a dump file that is not one."""


def restore_order(infos: Sequence[ModelInfo[Any]]) -> list[list[ModelInfo[Any]]]:
    """The models in groups, targets before sources; a group of several models, or of one
    model linking to itself, is a link cycle (Tarjan's strongly connected components)."""
    by_name = {info.name: info for info in infos}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[ModelInfo[Any]]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for link in by_name[name].links:
            target = link.target.name
            if target not in by_name:
                continue  # not being dumped: the caller checks that every target is
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group: list[ModelInfo[Any]] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(by_name[member])
                if member == name:
                    break
            groups.append(sorted(group, key=lambda info: list(by_name).index(info.name)))

    for name in by_name:
        if name not in index:
            visit(name)
    return groups


def plan(
    infos: Sequence[ModelInfo[Any]],
) -> tuple[list[ModelInfo[Any]], dict[str, tuple[LinkInfo, ...]]]:
    """The models in restore order, and per model in a link cycle the links to clear on the
    first pass. A required single link inside a cycle cannot be cleared: `DumpError`."""
    order: list[ModelInfo[Any]] = []
    cleared: dict[str, tuple[LinkInfo, ...]] = {}
    for group in restore_order(infos):
        names = {info.name for info in group}
        for info in group:
            inner = tuple(link for link in info.links if link.target.name in names)
            for link in inner:
                if link.required and not link.many:
                    raise DumpError(
                        f"{link.name} is a required link inside a link cycle "
                        f"({' -> '.join(sorted(names | {info.name}))}): dump/restore writes "
                        "such records twice, first with those links cleared, and needs them "
                        "optional or collections"
                    )
            if inner:
                cleared[info.name] = inner
        order.extend(group)
    return order, cleared


def without_links(record: Any, links: Iterable[LinkInfo]) -> Any:
    """``record`` with the given link fields cleared (None, or an empty collection)."""
    cleared = {
        link.field: (link.container() if link.container is not None else ()) if link.many else None
        for link in links
    }
    return attrs.evolve(record, **cleared) if cleared else record


async def _pages(backend: Backend, space: str, prefix: bytes) -> AsyncIterator[tuple[bytes, bytes]]:
    upper = prefix_successor(prefix) if prefix else None
    async for rows in scan_pages(backend, space, prefix, upper, page=PAGE):
        for pair in rows:
            yield pair


async def grants(backend: Backend) -> AsyncIterator[tuple[str, str, bytes, str]]:
    """Every stored grant as (principal, model name, encoded key, role), read-only."""
    async for key, value in _pages(backend, GRANTS, b""):
        model, encoded, role = msgpack.unpackb(value)
        principal, _ = decode_element(key)  # principal | object id | role, each an element
        yield str(principal), model, encoded, role


async def memberships(backend: Backend, group: str | None = None) -> AsyncIterator[tuple[str, str]]:
    """Every (group, member) pair, or only those of ``group``, read-only."""
    async for key, value in _pages(backend, MEMBERS, b"" if group is None else encode_str(group)):
        name, _ = decode_element(key)
        if group is None or name == group:  # the prefix of "a" also starts "a\x00..."
            yield str(name), msgpack.unpackb(value)


async def other_models(backend: Backend, names: Iterable[str]) -> dict[str, int]:
    """Record counts of the models stored in ``backend`` (those with a stored schema) that are
    not among ``names`` and hold records."""
    known = set(names)
    found: dict[str, int] = {}
    async for key, _ in _pages(backend, SCHEMA_SPACE, b""):
        name = key.decode()
        if name not in known and (count := await backend.count(name)):
            found[name] = count
    return found


async def claim_restore(backend: Backend, *, force: bool) -> bytes | None:
    """Mark ``backend`` as being restored into, atomically: a token for `release_restore`, or
    None when it is already marked (a restore running or one that did not finish) and not
    ``force``."""
    token = os.urandom(16)
    expects = () if force else (Expect(META, RESTORING, None),)
    result = await backend.apply([WriteBatch((Put(META, RESTORING, token),), expects)])
    return None if result.failed[0] is not None else token


async def restoring(backend: Backend) -> bool:
    """Whether a restore into ``backend`` is running or did not finish (`claim_restore`)."""
    _, (mark,) = await backend.read(META, [RESTORING])
    return mark is not None


async def release_restore(backend: Backend, token: bytes) -> None:
    """Remove the mark `claim_restore` set, unless another (forced) restore took it over."""
    await backend.apply([WriteBatch((Delete(META, RESTORING),), (Expect(META, RESTORING, token),))])
