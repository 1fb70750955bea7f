"""Permissions served by one actor: its loop, the proof engine, listings and write planning."""
