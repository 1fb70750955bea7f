"""Models with every kind of link, for the cross-link tests."""

from __future__ import annotations

import attrs

import netabase


@netabase.model(key="id")
@attrs.frozen
class Client:
    id: str
    name: str = ""


@netabase.model(key="sku")
@attrs.frozen
class Product:
    sku: str
    title: str = ""


@netabase.model(key="id")
@attrs.frozen
class Account:
    """One-to-one with Client; goes away with its client."""

    id: int
    owner: str = netabase.link(Client, unique=True, on_delete="cascade")


@netabase.model(key="id")
@attrs.frozen
class Purchase:
    """Many-to-one to Client (restrict) and many-to-many to Product (set_null drops the sku)."""

    id: int
    client: str = netabase.link(Client)
    products: frozenset[str] = netabase.link(Product, on_delete="set_null", default=frozenset())


@netabase.model(key="id")
@attrs.frozen
class Line:
    """Cascades from its purchase; an optional product link is cleared when the product goes."""

    id: tuple[int, int]
    purchase: int = netabase.link(Purchase, on_delete="cascade")
    product: str | None = netabase.link(Product, required=False, on_delete="set_null")


@netabase.model(key="id", parent="parent")
@attrs.frozen
class Folder:
    """A self-referential tree: removing a folder removes its subtree."""

    id: str
    parent: str | None = netabase.link("self", required=False, on_delete="cascade")


LINK_MODELS = [Client, Product, Account, Purchase, Line, Folder]
