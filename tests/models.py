"""Models shared by the tests."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid

import attrs

import netabase


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Address:
    street: str
    zip_code: str | None = None


@netabase.model(key="id")
@attrs.frozen
class Customer:
    id: str
    name: str
    email: str = ""


@netabase.model(key="id")
@attrs.frozen
class Order:
    id: int
    customer: str = netabase.link(Customer)
    total_cents: int = 0


@netabase.model(key="id")
@attrs.frozen
class Everything:
    """One field of every supported kind, to prove the codec round-trips them."""

    id: uuid.UUID
    flag: bool
    count: int
    ratio: float
    text: str
    blob: bytes
    when: datetime.datetime
    day: datetime.date
    price: decimal.Decimal
    color: Color
    address: Address
    tags: tuple[str, ...]
    scores: list[int]
    labels: frozenset[str]
    extra: dict[str, int]
    maybe: int | None = None
    anything: dict[str, object] = attrs.Factory(dict)


@netabase.model(key="key")
@attrs.frozen
class Pair:
    key: tuple[str, int]
    value: str = ""


@netabase.model(key="id")
@attrs.define
class Note:
    """A mutable (non-frozen) model: the cache must hand out copies."""

    id: int
    text: str


ALL_MODELS = [Customer, Order, Everything, Pair, Note]
