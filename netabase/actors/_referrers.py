"""Reading the reverse index: the entries under a target key, and the referrers they name
checked against the referring records themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import CorruptRecord, NetabaseError
from .._keys import prefix_successor
from .._layout import RefEntry, parse_ref, ref_prefix
from .._model import LinkInfo, ModelInfo
from ..backends._paging import scan_pages

if TYPE_CHECKING:
    from .._schema import Schema
    from ..backends import Backend

PAGE = 1024


async def read_referrers(backend: Backend, space: str, prefix: bytes) -> list[RefEntry]:
    """Every reverse-index entry under ``prefix``, page by page."""
    pages = scan_pages(backend, space, prefix, prefix_successor(prefix), page=PAGE)
    return [parse_ref(key, value) async for rows in pages for key, value in rows]


async def verified_referrers(
    schema: Schema, backend: Backend, target: ModelInfo[Any], key: bytes
) -> list[Any]:
    """(model, field, key) of the records that really link to ``key`` of ``target``."""
    entries = await read_referrers(backend, target.ref_space, ref_prefix(key))
    out = []
    for entry in entries:
        source = schema.models.get(entry.source)
        link = schema.link_index.get((entry.source, entry.field))
        if source is None or link is None:
            continue
        _, (value,) = await backend.read(source.space, [entry.source_key])
        if value is not None and still_links(source, link, entry.source_key, value, key):
            out.append((source.name, entry.field, entry.source_key))
    out.sort()
    return [(name, field, schema.models[name].decode_key(k)) for name, field, k in out]


def decoded_or_none(model: ModelInfo[Any], key: bytes, value: bytes) -> Any:
    """The record ``value`` holds, or None when it does not decode."""
    try:
        return model.codec.decode(value, key)
    except CorruptRecord:
        return None  # its own index entries become stale and are cleaned when met


def still_links(
    source: ModelInfo[Any], link: LinkInfo, source_key: bytes, value: bytes, target_key: bytes
) -> bool:
    """Whether the stored ``value`` of a referrer still names ``target_key`` through ``link``;
    an undecodable one cannot tell, and its entry is obeyed."""
    record = decoded_or_none(source, source_key, value)
    if record is None:
        return True
    try:
        return target_key in link.encoded_keys_of(record)
    except NetabaseError:
        return False
