"""Models with a permission hierarchy, for the permission tests."""

from __future__ import annotations

import attrs

import netabase


@netabase.model(key="id")
@attrs.frozen
class Organization:
    id: str


@netabase.model(key="id", parent="org")
@attrs.frozen
class Department:
    id: str
    org: str = netabase.link(Organization, on_delete="cascade")


@netabase.model(key="id", parent="department")
@attrs.frozen
class Project:
    id: str
    department: str = netabase.link(Department, on_delete="cascade")


@netabase.model(key="id", parent="project")
@attrs.frozen
class Document:
    id: str
    project: str = netabase.link(Project, on_delete="cascade")
    author: str = ""
    published: bool = False


@netabase.model(key="id", parent="parent")
@attrs.frozen
class Node:
    """A self-referential hierarchy of any depth; removing a node lifts its children to roots."""

    id: int
    parent: int | None = netabase.link("self", required=False, on_delete="set_null")


PERM_MODELS = [Organization, Department, Project, Document, Node]
