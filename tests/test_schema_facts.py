"""`Schema.from_models`, built and checked without opening anything."""

from __future__ import annotations

import attrs
import pytest

import netabase
from netabase._layout import PERMISSION_SPACES, SCHEMA_SPACE
from netabase._schema import Schema

from .link_models import LINK_MODELS, Account, Client, Folder, Purchase


def test_the_link_index_names_every_link_by_source_and_field() -> None:
    schema = Schema.from_models(LINK_MODELS)
    assert set(schema.models) == {cls.__name__ for cls in LINK_MODELS}
    assert schema.models["Client"].cls is Client
    assert set(schema.link_index) == {
        ("Account", "owner"),
        ("Purchase", "client"),
        ("Purchase", "products"),
        ("Line", "purchase"),
        ("Line", "product"),
        ("Folder", "parent"),
    }
    link = schema.link_index[("Purchase", "client")]
    assert link.source.cls is Purchase and link.target.cls is Client


def test_restrict_probes_cover_only_models_a_restrict_referrer_can_refuse() -> None:
    schema = Schema.from_models(LINK_MODELS)
    # Purchase.client restricts Client; Account cascades from Client, so it is in the reach.
    assert schema.restrict_probes == {"Client": frozenset({"Client", "Account"})}
    assert Schema.from_models([Client, Account]).restrict_probes == {}


def test_hierarchy_parents_are_the_targets_of_parent_links() -> None:
    assert Schema.from_models(LINK_MODELS).hierarchy_parents == frozenset({"Folder"})
    assert Schema.from_models([Folder]).hierarchy_parents == frozenset({"Folder"})
    assert Schema.from_models([Client]).hierarchy_parents == frozenset()


def test_spaces_list_every_model_claim_permission_and_schema_space_once() -> None:
    spaces = Schema.from_models([Client, Account]).spaces
    assert spaces == (
        "Client",
        "~ref.Client",
        "Account",
        "~ref.Account",
        "~uniq.Account.owner",
        *PERMISSION_SPACES,
        SCHEMA_SPACE,
    )
    assert len(set(spaces)) == len(spaces)


def test_unique_fields_get_a_claim_space() -> None:
    @netabase.model(key="id", unique=["email"])
    @attrs.frozen
    class Member:
        id: str
        email: str

    assert "~uniqf.Member.email" in Schema.from_models([Member]).spaces


def test_rules_group_allow_and_require_conditions_per_model_and_action() -> None:
    @netabase.condition("schema_facts_public")
    def public(record: object) -> bool:
        return True

    @netabase.model(
        key="id",
        rules=[
            netabase.allow("read", when="schema_facts_public"),
            netabase.require("write", when="schema_facts_public"),
        ],
    )
    @attrs.frozen
    class Page:
        id: str

    schema = Schema.from_models([Page])
    assert schema.rules == {
        ("Page", "read"): (("schema_facts_public",), ()),
        ("Page", "write"): ((), ("schema_facts_public",)),
    }


def test_a_rule_naming_an_unregistered_condition_is_refused() -> None:
    @netabase.model(key="id", rules=[netabase.allow("read", when="schema_facts_nowhere")])
    @attrs.frozen
    class Secret:
        id: str

    with pytest.raises(netabase.ModelDefinitionError, match=r"nowhere.*not registered"):
        Schema.from_models([Secret])


def test_a_rule_naming_an_unknown_action_is_refused() -> None:
    @netabase.model(key="id", rules=[netabase.allow("fly", when="schema_facts_nowhere")])
    @attrs.frozen
    class Bird:
        id: str

    with pytest.raises(netabase.UnknownAction):
        Schema.from_models([Bird])


def test_a_class_that_is_not_a_model_is_refused() -> None:
    class Plain:
        pass

    with pytest.raises(netabase.ModelDefinitionError, match="model Plain: is not a netabase model"):
        Schema.from_models([Plain])


def test_two_classes_with_one_model_name_are_refused() -> None:
    @netabase.model(key="id", name="Client")
    @attrs.frozen
    class Other:
        id: str

    with pytest.raises(netabase.ModelDefinitionError, match="share the model name 'Client'"):
        Schema.from_models([Client, Other])
    assert Schema.from_models([Client, Client]).models["Client"].cls is Client


def test_a_link_to_an_unregistered_model_is_refused() -> None:
    with pytest.raises(netabase.ModelDefinitionError, match="links to Client, which is not in"):
        Schema.from_models([Account])


def test_the_schema_is_frozen() -> None:
    schema = Schema.from_models([Client])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        schema.rules = {}  # type: ignore[misc]
