"""The storage layout, byte for byte: a change here would stop existing databases from opening.

The expected bytes were produced by the layout as released; never update them to make a change
pass (write a layout upgrade, like `actors/_permission_layout.py`, instead).
"""

from __future__ import annotations

import attrs
import msgpack

import netabase
from netabase import _layout
from netabase.actors._claims import claim_kinds

from .link_models import Account, Client

CLIENT_KEY = bytes.fromhex("0261636d6500")  # "acme"
ACCOUNT_KEY = bytes.fromhex("1507")  # 7
OID = bytes.fromhex("30e8646dd7bbb611f8e19fed4475f80180")  # object_id("Client", CLIENT_KEY)
REF_KEY = bytes.fromhex("512e2d82868fbcc817e279f30eac138cd76fe86ba686b1697866c42bda0fe0c7")
REF_VALUE = bytes.fromhex("93a74163636f756e74a56f776e6572c4021507")
GRANT_KEY = bytes.fromhex("02616c6963650030e8646dd7bbb611f8e19fed4475f801800261646d696e00")
OBJECT_KEY = bytes.fromhex("30e8646dd7bbb611f8e19fed4475f8018002616c696365000261646d696e00")
MEMBER_KEY = bytes.fromhex("0273746166660002616c69636500")  # ("staff", "alice")
MEMBER_OF_KEY = bytes.fromhex("02616c6963650002737461666600")  # ("alice", "staff")


def test_space_names_are_pinned() -> None:
    assert _layout.record_space("Client") == "Client"
    assert _layout.ref_space("Client") == "~ref.Client"
    assert _layout.unique_link_space("Account", "owner") == "~uniq.Account.owner"
    assert _layout.unique_field_space("Member", "email") == "~uniqf.Member.email"
    assert _layout.BACKEND_META_SPACE == "~meta"
    assert _layout.SCHEMA_SPACE == "~schema"
    assert _layout.PERMISSION_SPACES == (
        "~perm.grants",
        "~perm.objects",
        "~perm.members",
        "~perm.memberof",
        "~perm.meta",
    )
    assert (_layout.REVISION, _layout.GRANTS_REVISION) == (b"revision", b"grants")
    assert (_layout.LAYOUT, _layout.LAYOUT_VERSION) == (b"layout", b"2")


def test_the_claim_spaces_are_the_spaces_the_claims_use() -> None:
    @netabase.model(key="id", unique=["email"])
    @attrs.frozen
    class Holder:
        id: str
        email: str
        client: str = netabase.link(Client, unique=True)

    info = netabase.info_of(Holder)
    assert info is not None
    spaces = [kind.space for kind in claim_kinds(info)]
    assert _layout.claim_spaces(info) == spaces == ["~uniq.Holder.client", "~uniqf.Holder.email"]


def test_key_formats_are_pinned() -> None:
    assert _layout.ref_key(CLIENT_KEY, "Account", "owner", ACCOUNT_KEY) == REF_KEY
    assert _layout.ref_prefix(CLIENT_KEY) == REF_KEY[:16]
    assert _layout.ref_value("Account", "owner", ACCOUNT_KEY) == REF_VALUE
    assert _layout.parse_ref(REF_KEY, REF_VALUE) == (REF_KEY, "Account", "owner", ACCOUNT_KEY)
    assert _layout.object_id("Client", CLIENT_KEY) == OID
    assert _layout.grant_key("alice", OID, "admin") == GRANT_KEY
    assert _layout.object_key(OID, "alice", "admin") == OBJECT_KEY
    assert _layout.membership_key("staff", "alice") == MEMBER_KEY
    assert _layout.membership_key("alice", "staff") == MEMBER_OF_KEY


async def test_a_database_writes_exactly_the_pinned_rows(reopenable: str) -> None:
    async with netabase.open(reopenable, models=[Client, Account]) as db:
        await db.store(Client).insert(Client("acme"))
        await db.store(Account).insert(Account(7, owner="acme"))
        await db.permissions.grant("alice", Client, "acme", "admin")
        await db.permissions.add_member("staff", "alice")
        backend = db.backend

        async def keys(space: str) -> list[bytes]:
            return [key for key, _ in await backend.scan(space, b"", None, limit=10)]

        assert await keys("Client") == [CLIENT_KEY]
        assert await keys("Account") == [ACCOUNT_KEY]
        assert await backend.scan("~ref.Client", b"", None, limit=10) == [(REF_KEY, REF_VALUE)]
        assert await backend.scan("~uniq.Account.owner", b"", None, limit=10) == [
            (CLIENT_KEY, ACCOUNT_KEY)
        ]
        grants = await backend.scan("~perm.grants", b"", None, limit=10)
        assert grants == [(GRANT_KEY, msgpack.packb(("Client", CLIENT_KEY, "admin")))]
        objects = await backend.scan("~perm.objects", b"", None, limit=10)
        assert objects == [(OBJECT_KEY, msgpack.packb(("alice", "admin")))]
        assert await keys("~perm.members") == [MEMBER_KEY]
        assert await keys("~perm.memberof") == [MEMBER_OF_KEY]
