"""Messaging settings: per-user preferences and the practice's rules (docs/api.md#settings)."""
