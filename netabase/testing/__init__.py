"""Helpers for testing code that uses netabase, and for testing netabase backends."""

from ._faults import InjectedFault, inject_fault
from ._integrity import check_integrity
from ._redis_server import RedisServer, free_port

__all__ = ["InjectedFault", "RedisServer", "check_integrity", "free_port", "inject_fault"]
