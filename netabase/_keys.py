"""Order-preserving key encoding.

A subset of FoundationDB's tuple layer: every supported key (int, str, bytes, UUID and flat tuples
of these) encodes to bytes whose bytewise order equals the keys' natural order, and every element
is self-delimiting, so a shorter tuple (or an unterminated string) is a usable scan prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

BYTES = 0x01
STR = 0x02
INT_ZERO = 0x14
INT_POS_BIG = 0x1D
INT_NEG_BIG = 0x0B
UUID_CODE = 0x30

MAX_KEY_SIZE = 511
MAX_INT_BYTES = 255
"""The longest int a key element holds: its length is one byte of the encoding."""
"""LMDB's compiled-in key limit; every backend enforces it so data can move between them."""

KeyEncoder = Callable[[Any], bytes]
KeyDecoder = Callable[[bytes], Any]

SCALAR_KEY_TYPES: tuple[type, ...] = (int, str, bytes, uuid.UUID)


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") if b"\x00" in raw else raw


def encode_int(value: int) -> bytes:
    # The key is what the record stores: never a subclass's own ==, to_bytes, encode, __bytes__.
    value = int.__int__(value)
    if value == 0:
        return b"\x14"
    if value > 0:
        size = _int_size(value)
        body = value.to_bytes(size, "big")
        if size <= 8:
            return bytes((INT_ZERO + size,)) + body
        return bytes((INT_POS_BIG, size)) + body
    size = _int_size(-value)
    body = (value + (1 << (8 * size)) - 1).to_bytes(size, "big")
    if size <= 8:
        return bytes((INT_ZERO - size,)) + body
    return bytes((INT_NEG_BIG, size ^ 0xFF)) + body


def _int_size(magnitude: int) -> int:
    size = (magnitude.bit_length() + 7) // 8
    if size > MAX_INT_BYTES:
        raise ValueError(f"an int key holds at most {MAX_INT_BYTES} bytes, not {size}")
    return size


def encode_str(value: str) -> bytes:
    return b"\x02" + _escape(str.encode(value, "utf-8")) + b"\x00"


def encode_bytes(value: bytes | bytearray | memoryview) -> bytes:
    return b"\x01" + _escape(value if type(value) is bytes else bytes(memoryview(value))) + b"\x00"


def encode_uuid(value: uuid.UUID) -> bytes:
    return b"\x30" + value.bytes


def encode_element(value: object) -> bytes:
    """Encode one key element by its runtime type (used for tuples and prefixes)."""
    if isinstance(value, bool):
        raise TypeError("bool is not a supported key type")
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, str):
        return encode_str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return encode_bytes(value)
    if isinstance(value, uuid.UUID):
        return encode_uuid(value)
    raise TypeError(f"{type(value).__name__} is not a supported key type")


def encode_tuple(value: tuple[object, ...]) -> bytes:
    return b"".join(encode_element(part) for part in tuple.__iter__(value))


def encoder_for(key_type: object) -> KeyEncoder:
    """The encoder for a declared key type, chosen once at model definition."""
    if key_type is int:
        return encode_int
    if key_type is str:
        return encode_str
    if key_type is bytes:
        return encode_bytes
    if key_type is uuid.UUID:
        return encode_uuid
    return encode_tuple


def _unescape_until_terminator(data: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        end = data.index(b"\x00", pos)
        out += data[pos:end]
        if end + 1 < len(data) and data[end + 1] == 0xFF:
            out.append(0)
            pos = end + 2
            continue
        return bytes(out), end + 1


def decode_element(data: bytes, pos: int = 0) -> tuple[object, int]:
    """Decode the element at ``pos``; return it and the position after it."""
    code = data[pos]
    if code == BYTES:
        return _unescape_until_terminator(data, pos + 1)
    if code == STR:
        raw, end = _unescape_until_terminator(data, pos + 1)
        return raw.decode("utf-8"), end
    if code == INT_ZERO:
        return 0, pos + 1
    if INT_ZERO < code <= INT_ZERO + 8:
        size = code - INT_ZERO
        return int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
    if INT_ZERO - 8 <= code < INT_ZERO:
        size = INT_ZERO - code
        magnitude = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
        return magnitude - (1 << (8 * size)) + 1, pos + 1 + size
    if code == INT_POS_BIG:
        size = data[pos + 1]
        return int.from_bytes(data[pos + 2 : pos + 2 + size], "big"), pos + 2 + size
    if code == INT_NEG_BIG:
        size = data[pos + 1] ^ 0xFF
        magnitude = int.from_bytes(data[pos + 2 : pos + 2 + size], "big")
        return magnitude - (1 << (8 * size)) + 1, pos + 2 + size
    if code == UUID_CODE:
        return uuid.UUID(bytes=data[pos + 1 : pos + 17]), pos + 17
    raise ValueError(f"unknown key type code 0x{code:02x} at offset {pos}")


def decode_single(data: bytes) -> object:
    value, end = decode_element(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after key")
    return value


def decode_tuple(data: bytes) -> tuple[object, ...]:
    parts: list[object] = []
    pos = 0
    while pos < len(data):
        value, pos = decode_element(data, pos)
        parts.append(value)
    return tuple(parts)


def decoder_for(key_type: object) -> KeyDecoder:
    if key_type in SCALAR_KEY_TYPES:
        return decode_single
    return decode_tuple


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def component_range(encoded: bytes) -> tuple[bytes, bytes]:
    """``[lo, hi)`` of the keys whose leading elements are exactly the complete ``encoded`` ones.

    After a complete element comes another element's type code (below 0xff) or the end of the
    key, never the 0xff that continues an escaped NUL, so ``encode_str("a")`` does not take in
    ``encode_str("a\x00b")`` as `prefix_successor` would. Use it for every look-up by whole
    elements; ``encoded`` must end where an element ends.
    """
    return encoded, encoded + b"\xff"


def prefix_upper_bound(value: object, encoded: bytes) -> bytes | None:
    """The exclusive upper bound of the keys ``encode_prefix(value)`` matches.

    A tuple prefix matches whole leading elements (`component_range`), so ``("a",)`` does not
    take in ``("a\x00", ...)``; a str or bytes prefix matches every key that starts with it.
    """
    if isinstance(value, tuple):
        return component_range(encoded)[1]
    return prefix_successor(encoded)


def encode_prefix(value: object) -> bytes:
    """Encode a scan prefix.

    A str or bytes matches keys that start with it; a tuple matches keys whose leading elements
    equal it.
    """
    if isinstance(value, str):
        return b"\x02" + _escape(str.encode(value, "utf-8"))
    if isinstance(value, bytes):
        return b"\x01" + _escape(value if type(value) is bytes else bytes(memoryview(value)))
    if isinstance(value, tuple):
        return encode_tuple(value)
    return encode_element(value)
