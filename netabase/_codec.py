"""Record codec: cattrs (un)structuring plus msgpack, behind a two-byte envelope.

The envelope is ``[FORMAT_VERSION, model schema version]``: a later change of either is detected
on read instead of silently misreading old bytes. Hooks are built once per model.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Set
from typing import Any, Generic, TypeVar

import cattrs
import msgpack

from ._errors import CorruptRecord

FORMAT_VERSION = 1

T = TypeVar("T")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(
        detailed_validation=False,
        unstruct_collection_overrides={Set: list},
    )
    converter.register_unstructure_hook(datetime.datetime, lambda v: v.isoformat())
    converter.register_structure_hook(
        datetime.datetime, lambda v, _: datetime.datetime.fromisoformat(v)
    )
    converter.register_unstructure_hook(datetime.date, lambda v: v.isoformat())
    converter.register_structure_hook(datetime.date, lambda v, _: datetime.date.fromisoformat(v))
    converter.register_unstructure_hook(datetime.time, lambda v: v.isoformat())
    converter.register_structure_hook(datetime.time, lambda v, _: datetime.time.fromisoformat(v))
    converter.register_unstructure_hook(uuid.UUID, lambda v: v.bytes)
    converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(bytes=v))
    converter.register_unstructure_hook(decimal.Decimal, str)
    converter.register_structure_hook(decimal.Decimal, lambda v, _: decimal.Decimal(v))
    converter.register_structure_hook(bytes, lambda v, _: bytes(v))
    converter.register_structure_hook_func(lambda t: t is object, lambda v, _: v)
    return converter


CONVERTER = _make_converter()


class RecordCodec(Generic[T]):
    """Encodes and decodes one model's records; hooks resolved once at construction."""

    __slots__ = ("_describe_key", "_header", "_structure", "_unstructure", "model_name", "version")

    def __init__(
        self, cls: type[T], model_name: str, version: int, describe_key: Callable[[bytes], object]
    ) -> None:
        self.model_name = model_name
        self.version = version
        self._describe_key = describe_key
        self._header = bytes((FORMAT_VERSION, version))
        self._unstructure: Callable[[T], Any] = CONVERTER.get_unstructure_hook(cls)
        structure = CONVERTER.get_structure_hook(cls)
        self._structure: Callable[[Any], T] = lambda data: structure(data, cls)

    def encode(self, record: T) -> bytes:
        payload: bytes = msgpack.packb(self._unstructure(record), use_bin_type=True)
        return self._header + payload

    def decode(self, data: bytes, key: bytes) -> T:
        """Decode the bytes stored under encoded ``key``; failures raise `CorruptRecord`."""
        if data[:2] != self._header:
            raise CorruptRecord(self.model_name, self._key(key), self._describe_header(data))
        try:
            return self._structure(msgpack.unpackb(data[2:], raw=False, strict_map_key=False))
        except Exception as exc:
            raise CorruptRecord(
                self.model_name, self._key(key), f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    def _key(self, key: bytes) -> object:
        """The key as the user wrote it, for the error message (the raw bytes if undecodable)."""
        try:
            return self._describe_key(key)
        except Exception:
            return key

    def _describe_header(self, data: bytes) -> str:
        if len(data) < 2:
            return f"{len(data)} bytes is shorter than the 2-byte envelope"
        if data[0] != FORMAT_VERSION:
            return f"envelope format {data[0]} is not the supported format {FORMAT_VERSION}"
        return (
            f"stored with schema version {data[1]}, but the model declares version "
            f"{self.version}; migrate the data or declare the matching version"
        )
