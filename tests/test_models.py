"""Model declarations: mistakes are caught when the class is defined, naming class and field."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import pytest

import netabase

from .models import Customer


def test_model_descriptor_is_built_once() -> None:
    info = netabase.info_of(Customer)
    assert info is not None
    assert info.name == "Customer" and info.key_field == "id" and info.frozen
    assert netabase.info_of(int) is None


def test_not_an_attrs_class() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Plain.*attrs class"):

        @netabase.model(key="id")
        class Plain:
            id: int


def test_missing_key_field() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"NoKey\.uid.*does not exist"):

        @netabase.model(key="uid")
        @attrs.frozen
        class NoKey:
            id: int


@pytest.mark.parametrize("key_type", [float, bool, list[int], tuple[int, ...], dict[str, int]])
def test_unsupported_key_types(key_type: Any) -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"BadKey\.id.*key type"):
        netabase.model(key="id")(attrs.make_class("BadKey", {"id": attrs.field(type=key_type)}))


@pytest.mark.parametrize("key_type", [int, str, bytes, uuid.UUID, tuple[str, int, uuid.UUID]])
def test_supported_key_types(key_type: Any) -> None:
    cls = netabase.model(key="id")(attrs.make_class("GoodKey", {"id": attrs.field(type=key_type)}))
    assert netabase.info_of(cls) is not None


def test_unsupported_field_type() -> None:
    class Opaque:
        pass

    with pytest.raises(netabase.ModelDefinitionError, match=r"Holder\.thing.*not supported"):
        netabase.model(key="id")(
            attrs.make_class(
                "Holder", {"id": attrs.field(type=int), "thing": attrs.field(type=Opaque)}
            )
        )


def test_link_target_must_be_a_model() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Bad\.to.*not a netabase model"):

        @netabase.model(key="id")
        @attrs.frozen
        class Bad:
            id: int
            to: int = netabase.link(int)


def test_link_field_must_hold_the_target_key_type() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Bad\.customer.*must be str"):

        @netabase.model(key="id")
        @attrs.frozen
        class Bad:
            id: int
            customer: int = netabase.link(Customer)


def test_set_null_needs_an_optional_link() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Bad\.customer.*required=False"):

        @netabase.model(key="id")
        @attrs.frozen
        class Bad:
            id: int
            customer: str = netabase.link(Customer, on_delete="set_null")


def test_parent_must_be_a_single_link() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Bad\.owner.*link field"):

        @netabase.model(key="id", parent="owner")
        @attrs.frozen
        class Bad:
            id: int
            owner: str


def test_link_options_are_checked_at_definition() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match=r"Tags\.tags.*be required=False"):

        @netabase.model(key="id")
        @attrs.frozen
        class Tags:
            id: int
            tags: frozenset[str] = netabase.link(Customer, required=False)

    with pytest.raises(netabase.ModelDefinitionError, match=r"Odd\.to.*unique=.*True or False"):

        @netabase.model(key="id")
        @attrs.frozen
        class Odd:
            id: int
            to: str = netabase.link(Customer, unique="yes")  # type: ignore[arg-type]


def test_collection_and_self_links() -> None:
    @netabase.model(key="id", parent="parent")
    @attrs.frozen
    class Folder:
        id: str
        parent: str | None = netabase.link("self", required=False, on_delete="cascade")
        watchers: frozenset[str] = netabase.link(Customer, default=frozenset())

    info = netabase.info_of(Folder)
    assert info is not None and info.parent is not None
    assert info.parent.target is info
    assert [(entry.field, entry.many) for entry in info.links] == [
        ("parent", False),
        ("watchers", True),
    ]


async def test_models_linking_to_unregistered_models_are_refused() -> None:
    from .models import Order

    with pytest.raises(netabase.ModelDefinitionError, match=r"Order\.customer.*Customer"):
        async with netabase.open("memory://", models=[Order]):
            pass


async def test_bad_urls() -> None:
    for url, message in [
        ("nope", "scheme://"),
        ("ftp://x", "unknown scheme"),
        ("lmdb://", "directory path"),
        ("lmdb:///tmp/x?map_size=big", "not an integer"),
        ("memory://?colour=red", "unknown option"),
    ]:
        with pytest.raises(netabase.InvalidURL, match=message):
            async with netabase.open(url, models=[Customer]):
                pass
