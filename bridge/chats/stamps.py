"""Change stamps: which chats got a message, and which of a user's chat states changed, since a
process last read them (the chat list it keeps per person, bridge/chats/kept.py).

A row is stamped in the transaction that changes it. A reader first asks for the *horizon*, a
stamp at or below that of every change it cannot see yet, then reads; next time it reads only
the rows stamped at or above that horizon. A row read twice is harmless (it is read as it is
now); no change is missed:

- SQLite has one writer at a time: a stamp is one more than the highest of its scope (the
  practice's chats, the user's states), so stamps grow in commit order, and the horizon is one
  more than the highest stamp now.
- PostgreSQL's writers run at once and commit in any order: a stamp is the id of the writing
  transaction (``txid_current()``), and the horizon the oldest transaction still running
  (``txid_snapshot_xmin``): whatever commits after the read has an id at or above it. There
  is no shared counter row, so writers never wait for each other over it.

A deleted chat takes its states' rows with it; that is no stamp but it moves the practice's
chats_version on, after which a reader reads everything again.
"""

from __future__ import annotations

from mautrix.util.async_db import Scheme

_PG_STAMP = "txid_current()"
_PG_HORIZON = "txid_snapshot_xmin(txid_current_snapshot())"


def chat_stamp(scheme: Scheme) -> str:
    """The stamp of a chat row being updated (in an UPDATE of ``chat``)."""
    if scheme == Scheme.SQLITE:
        return (
            "(SELECT coalesce(max(s.activity_stamp), 0) + 1 FROM chat s "
            "WHERE s.practice_id = chat.practice_id)"
        )
    return _PG_STAMP


def state_stamp(scheme: Scheme, user: str) -> str:
    """The stamp of a user_chat_state row being written for the user ``user`` (a placeholder)."""
    if scheme == Scheme.SQLITE:
        return (
            "(SELECT coalesce(max(s.stamp), 0) + 1 FROM user_chat_state s "
            f"WHERE s.user_id = {user})"
        )
    return _PG_STAMP


def horizons_query(scheme: Scheme) -> tuple[str, bool]:
    """The practice's (``$1``) chats_version, the horizon of its chats' activity and that of the
    user's (``$2``) states; and whether the query takes the user (SQLite's horizons are per
    scope, PostgreSQL's one for the whole database)."""
    if scheme == Scheme.SQLITE:
        return (
            "SELECT chats_version, "
            "(SELECT coalesce(max(activity_stamp), 0) + 1 FROM chat WHERE practice_id = $1), "
            "(SELECT coalesce(max(stamp), 0) + 1 FROM user_chat_state WHERE user_id = $2) "
            "FROM practice WHERE practice_id = $1",
            True,
        )
    return (
        f"SELECT chats_version, {_PG_HORIZON}, {_PG_HORIZON} FROM practice WHERE practice_id = $1",
        False,
    )
