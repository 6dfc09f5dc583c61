"""Messaging settings: per-user preferences and the practice's rules (DESIGN §9)."""
