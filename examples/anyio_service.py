"""An anyio service on the trio backend using netabase exactly as a trio app does.

    python examples/anyio_service.py [URL] [ORDERS]

A producer streams orders through an anyio memory object stream to a pool of workers that
store them; anyio task groups are trio nurseries underneath, so `netabase.open` needs no
adapter here (under anyio's asyncio backend use `netabase.open_asyncio` instead).
"""

from __future__ import annotations

import sys

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

import netabase


@netabase.model(key="id")
@attrs.frozen
class Customer:
    id: str
    name: str


@netabase.model(key="id")
@attrs.frozen
class Order:
    id: int
    customer: str = netabase.link(Customer)
    total_cents: int = 0


async def run_service(url: str = "memory://", orders: int = 100) -> dict[str, int]:
    """Store ``orders`` orders through 4 anyio workers; return what the database then holds."""
    async with netabase.open(url, models=[Customer, Order]) as db:
        customers, order_store = db.store(Customer), db.store(Order)
        await customers.insert_many(Customer(f"c{i}", f"Customer {i}") for i in range(5))
        send, receive = anyio.create_memory_object_stream[Order](max_buffer_size=16)

        async def worker(inbox: MemoryObjectReceiveStream[Order]) -> None:
            async with inbox:
                async for order in inbox:
                    await order_store.insert(order)

        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(worker, receive.clone())
            receive.close()
            async with send:
                for i in range(orders):
                    await send.send(Order(i, f"c{i % 5}", 100 * i))
        first = [order.id async for order in order_store.scan(limit=1)]
        return {
            "orders": await order_store.count(),
            "customers": await customers.count(),
            "first": first[0],
        }


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "memory://"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    print(anyio.run(run_service, url, count, backend="trio"))
