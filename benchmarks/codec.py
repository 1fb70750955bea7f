"""Codec figures: netabase's record codec against plain cattrs + msgpack, measured in this run.

python benchmarks/codec.py
"""

from __future__ import annotations

import time

import cattrs
import msgpack
from _common import Item, make_item

import netabase

N = 200_000


def main() -> None:
    info = netabase.info_of(Item)
    assert info is not None
    records = [make_item(i) for i in range(1000)]
    converter = cattrs.Converter(detailed_validation=False)
    plain = [msgpack.packb(converter.unstructure(r)) for r in records]
    ours = [info.codec.encode(r) for r in records]

    def per_op(fn, items) -> float:  # type: ignore[no-untyped-def]
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(N // len(items)):
                for item in items:
                    fn(item)
            best = min(best, (time.perf_counter() - started) / N)
        return best * 1e6

    base_decode = per_op(lambda b: converter.structure(msgpack.unpackb(b), Item), plain)
    our_decode = per_op(lambda b: info.codec.decode(b, None), ours)
    base_encode = per_op(lambda r: msgpack.packb(converter.unstructure(r)), records)
    our_encode = per_op(info.codec.encode, records)
    check = per_op(info.check, records)
    size_base = sum(map(len, plain)) / len(plain)
    size_ours = sum(map(len, ours)) / len(ours)
    print("codec (µs per record, best of 5; lower is better)")
    print(
        f"  decode  cattrs+msgpack {base_decode:5.2f}   netabase {our_decode:5.2f}"
        f"   ratio {our_decode / base_decode:.2f}x (target <= 1.5x)"
    )
    print(
        f"  encode  cattrs+msgpack {base_encode:5.2f}   netabase {our_encode:5.2f}"
        f"   ratio {our_encode / base_encode:.2f}x"
    )
    print(f"  field type checks on insert: {check:.2f} µs per record")
    print(
        f"  size    cattrs+msgpack {size_base:.0f} B   netabase {size_ours:.0f} B (2-byte envelope)"
    )


if __name__ == "__main__":
    main()
