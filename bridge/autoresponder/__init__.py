"""The practitioner's autoresponder: one automatic reply per client chat and half hour."""

from .decide import Autoresponder, in_schedule
from .sender import AutoresponseSender

__all__ = ["AutoresponseSender", "Autoresponder", "in_schedule"]
