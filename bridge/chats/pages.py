"""The chat list a page at a time (docs/chats.md#the-chat-list).

A person reads their list in a pass: the first page fixes which chats the pass lists and in what
order; each next page (``from`` = the previous page's ``next_batch``) hands out the following
chats of that order, each as it is now. So a chat that gets a message while the person pages
stays where the pass had it (neither lost nor listed twice) and is on top of the next pass; a
chat deleted meanwhile, or that no longer fits the filter (hidden since, read since), is left
out.

Passes are kept in the bridge process until their last page or for ``ttl_s`` (at most ``size``
of them, a sort key per chat each). A cursor whose pass is gone (expired, or handed to another
bridge process) goes on after the chat it last listed, in the order of now: a chat that moved
above that point meanwhile is then not listed again in this pass.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from .refusals import bad_cursor

# (not pinned, -last message time, chat id): pinned first, then the latest message first.
SortKey = tuple[bool, int, str]


@dataclass(frozen=True)
class Cursor:
    pass_id: str
    offset: int  # how many of the pass's chats were handed out
    last: SortKey  # the last chat handed out, as the pass sorted it
    view: str  # the filter and include_hidden the pass was made for

    def encode(self) -> str:
        raw = json.dumps(
            [self.pass_id, self.offset, int(self.last[0]), self.last[1], self.last[2], self.view],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            pass_id, offset, unpinned, ts, chat_id, view = raw
            if not (
                isinstance(pass_id, str)
                and isinstance(offset, int)
                and isinstance(ts, int)
                and isinstance(chat_id, str)
                and isinstance(view, str)
            ):
                raise ValueError(text)
            return cls(pass_id, offset, (bool(unpinned), ts, chat_id), view)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
            raise bad_cursor() from e


@dataclass
class Pass:
    user_id: str
    view: str
    order: list[SortKey]  # every chat of the pass, in order (the chat id last in each)
    made: float


class Passes:
    """The passes handed out by this process, oldest dropped first."""

    def __init__(self, *, size: int = 128, ttl_s: float = 300) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._passes: OrderedDict[str, Pass] = OrderedDict()

    def add(self, user_id: str, view: str, order: list[SortKey]) -> str:
        self._expire()
        pass_id = secrets.token_urlsafe(9)
        self._passes[pass_id] = Pass(user_id, view, order, time.monotonic())
        while len(self._passes) > self.size:
            self._passes.popitem(last=False)
        return pass_id

    def get(self, pass_id: str, user_id: str, view: str) -> Pass | None:
        self._expire()
        found = self._passes.get(pass_id)
        if found is None or found.user_id != user_id or found.view != view:
            return None
        return found

    def drop(self, pass_id: str) -> None:
        self._passes.pop(pass_id, None)

    def _expire(self) -> None:
        limit = time.monotonic() - self.ttl_s
        while self._passes:
            oldest = next(iter(self._passes.values()))
            if oldest.made >= limit:
                break
            self._passes.popitem(last=False)
