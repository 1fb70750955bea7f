"""A full consistency check of links: no dangling link, reverse index equal to a recomputation.

Reads every record, so it is for tests, fault drills and audits, not for the hot path.
"""

from __future__ import annotations

from typing import Any

from .._database import Database
from .._layout import ref_key, ref_value
from .._model import ModelInfo, info_of
from ..actors._claims import claim_kinds
from ..backends import Backend
from ..backends._paging import scan_pages

PAGE = 1000


async def _all(backend: Backend, space: str) -> list[tuple[bytes, bytes]]:
    return [row async for rows in scan_pages(backend, space, page=PAGE) for row in rows]


def _info(cls: type) -> ModelInfo[Any]:
    info: ModelInfo[Any] | None = info_of(cls)
    assert info is not None  # every class of an open database is a model
    return info


async def check_integrity(db: Database) -> list[str]:
    """Every problem found, as readable lines; an empty list means the links are consistent."""
    backend = db.backend
    models = [_info(cls) for cls in db.models]
    problems: list[str] = []
    expected_refs: dict[str, set[tuple[bytes, bytes]]] = {info.ref_space: set() for info in models}
    expected_unique: dict[str, set[tuple[bytes, bytes]]] = {}
    for info in models:
        kinds = claim_kinds(info)
        for kind in kinds:
            expected_unique[kind.space] = set()
        for key, value in await _all(backend, info.space):
            try:
                record: Any = info.codec.decode(value, key)
            except Exception as exc:
                problems.append(f"{info.name} {key!r}: undecodable ({exc})")
                continue
            for link, targets in zip(info.links, info.encode_links(record), strict=True):
                if targets:
                    _, found = await backend.read(link.target.space, list(targets))
                    for target_key, present in zip(targets, found, strict=True):
                        if present is None:
                            problems.append(
                                f"{info.name} {info.key_of(record)!r}.{link.field} -> missing "
                                f"{link.target.name} {link.target.decode_key(target_key)!r}"
                            )
                for target_key in targets:
                    expected_refs[link.target.ref_space].add(
                        (
                            ref_key(target_key, info.name, link.field, key),
                            ref_value(info.name, link.field, key),
                        )
                    )
            for kind in kinds:
                expected_unique[kind.space].update((v, key) for v in kind.values_of(record))
    for space, expected in (*expected_refs.items(), *expected_unique.items()):
        actual = set(await _all(backend, space))
        for extra in sorted(actual - expected)[:20]:
            problems.append(f"{space}: entry {extra[0].hex()} has no matching link")
        for gone in sorted(expected - actual)[:20]:
            problems.append(f"{space}: missing entry {gone[0].hex()} for an existing link")
    return problems
