"""The asyncio and synchronous adapters, generated from `Store`, `Permissions`, `PrincipalView`
and `Database` so that every public member of those appears in every adapter with its signature.

`_generate` writes `_sync.py` and `_asyncio.py` (``python -m netabase.adapters._generate``);
`tests/test_adapter_parity.py` fails when they are stale or any surface drifts. Each generated
method crosses into the trio runtime through `_base`: a portal thread for sync code, the asyncio
bridge (`netabase._bridge`) for asyncio, async iterators a page per crossing.
"""
