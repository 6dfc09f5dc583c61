"""Each person's chat list kept made in the process, and kept true with what changed since.

What the list sorts and filters by, every chat of the person with its last message and their
own state of each (pinned, hidden, marked unread, read), is read in full once. Each next list
reads only the chats that got a message and the states that changed since the last look
(change stamps, bridge/chats/stamps.py), and a chat's members once, when it is first on a page.
When one of the practice's chats is started, renamed, deleted or changes members, its
chats_version moves on and the person's list is read in full again. The sorted order of each
view the person asked for is kept with it and made again after a change.

Every process keeps its own lists (at most ``LISTS_KEPT`` people, the one not asked for the
longest dropped first) and sees every process's writes: the stamps and versions are in the
database, written in the transaction of each change.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .actors import Actor
from .models import Chat, UserChatState
from .pages import SortKey
from .store import ChatStore, ListKey

LISTS_KEPT = 64
# Whose list it is: practice, member kind, member records, records with direct chats off.
Identity = tuple[str, str, tuple[str, ...], frozenset[str]]


@dataclass
class KeptList:
    """A person's list as of the versions and horizons it was read at. Its keys and states are
    never changed (a change makes a new KeptList); ``orders``, ``details`` and ``unhide`` fill
    as asked."""

    identity: Identity
    chats_version: int | None  # None: not kept (the practice is not there)
    activity_from: int  # the horizon of chat activity it has seen everything before
    states_from: int  # the same for the person's chat states
    keys: dict[str, ListKey]
    states: dict[str, UserChatState]
    orders: dict[str, list[SortKey]] = field(default_factory=dict)  # by view
    # Chats listed so far: their kind, name, owner and members (their activity is in keys).
    details: dict[str, Chat] = field(default_factory=dict)
    # Chats with a message since the person hid them, found with the orders: {chat: its time}.
    unhide: dict[str, int] = field(default_factory=dict)


class KeptLists:
    def __init__(self, chats: ChatStore, size: int = LISTS_KEPT) -> None:
        self.chats = chats
        self.size = size
        self._lists: OrderedDict[str, KeptList] = OrderedDict()

    async def get(self, actor: Actor) -> KeptList:
        """The person's list as the database has it now."""
        identity: Identity = (
            actor.practice_id,
            actor.member_kind,
            tuple(actor.member_ids),
            frozenset(actor.direct_off),
        )
        kept = self._lists.get(actor.user_id)
        # The horizons before the rows: a change made meanwhile is read again next time.
        found = await self.chats.horizons(actor.practice_id, actor.user_id)
        version, activity_from, states_from = found if found is not None else (None, 0, 0)
        if kept is None or kept.identity != identity or kept.chats_version != version:
            keys, states = await self.chats.list_keys(
                actor.practice_id, actor.member_kind, actor.member_ids, actor.user_id
            )
            fresh = KeptList(identity, version, activity_from, states_from, keys, states)
        else:
            moved = await self.chats.activity_since(actor.practice_id, kept.activity_from)
            changed = await self.chats.user_states(actor.user_id, since=kept.states_from)
            keys, states = _moved_on(kept, moved, changed)
            same = keys is kept.keys and states is kept.states
            fresh = KeptList(
                identity,
                version,
                activity_from,
                states_from,
                keys,
                states,
                kept.orders if same else {},
                kept.details,
                kept.unhide if same else {},
            )
        # Kept unless another request of the person's kept a list meanwhile.
        if version is not None and self._lists.get(actor.user_id) is kept:
            self._lists[actor.user_id] = fresh
            self._lists.move_to_end(actor.user_id)
            while len(self._lists) > self.size:
                self._lists.popitem(last=False)
        return fresh


def _moved_on(
    kept: KeptList,
    moved: list[tuple[str, int, str | None]],
    changed: dict[str, UserChatState],
) -> tuple[dict[str, ListKey], dict[str, UserChatState]]:
    """The kept keys and states with what changed since (the same dicts if nothing did)."""
    keys, states = kept.keys, kept.states
    new_keys: dict[str, ListKey] = {}
    for room_id, ts, sender in moved:
        key = keys.get(room_id)
        if key is not None and (key[1], key[2]) != (ts, sender):
            new_keys[room_id] = (key[0], ts, sender, key[3])
    new_states = {
        room_id: state
        for room_id, state in changed.items()
        if room_id in keys and states.get(room_id) != state
    }
    return (keys | new_keys if new_keys else keys, states | new_states if new_states else states)
