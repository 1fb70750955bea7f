"""Models for the transaction tests: bank accounts, on-call doctors, customers and orders."""

from __future__ import annotations

import attrs

import netabase


@netabase.model(key="id")
@attrs.frozen
class Balance:
    id: str
    cents: int = 0


@netabase.model(key="name")
@attrs.frozen
class Doctor:
    name: str
    on_call: bool = True


@netabase.model(key="id", unique=["email"])
@attrs.frozen
class Customer:
    id: str
    email: str = ""


@netabase.model(key="id")
@attrs.frozen
class Order:
    id: int
    customer: str = netabase.link(Customer, on_delete="cascade")
    cents: int = 0


TX_MODELS = [Balance, Doctor, Customer, Order]
