"""The practice directory: practices, staff, clients and families, and portal sessions."""

from .models import Client, Practice, Role, Staff
from .service import DirectoryService, SessionGrant
from .store import DirectoryStore

__all__ = [
    "Client",
    "DirectoryService",
    "DirectoryStore",
    "Practice",
    "Role",
    "SessionGrant",
    "Staff",
]
