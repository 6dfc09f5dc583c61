"""What a portal user may put into a practice chat, and what of it counts against the limit.

The allow-list (docs/frontend.md#what-a-chat-takes) is the one list of event types and msgtypes
the product uses; anything else a portal user sends into a practice chat is refused. The length
a client's message is held to is what the client wrote, wherever it is written: ``body``
without a reply's quoted fallback, ``formatted_body`` as the text it shows without its
``<mx-reply>`` block, captions of files and media, the new content of edits, reaction keys and
redaction reasons. A file's name is not counted up to ``FILE_NAME_MAX`` characters (the longest
name file systems keep); a longer one counts whole, so a name cannot carry a message.

Standard library only: the Synapse module imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from typing import Any

MESSAGE = "m.room.message"
REACTION = "m.reaction"
REDACTION = "m.room.redaction"

# The allow-list. Read receipts and typing notices are not room events and always pass.
EVENT_TYPES = frozenset({MESSAGE, REACTION, REDACTION})
# Media messages; their body is a caption only when a separate file name is given (spec:
# m.image etc.).
MEDIA_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})
MSGTYPES = MEDIA_MSGTYPES | {"m.text"}
# Notices are what automated senders write: staff may send them (integrations, Element's
# commands), clients have none.
STAFF_MSGTYPES = MSGTYPES | {"m.notice"}

# The longest file name counted as a name rather than as text the sender wrote.
FILE_NAME_MAX = 255
_EDIT_FALLBACK = "* "
# Attributes whose text a client shows (a tooltip, an image's stand-in).
_SHOWN_ATTRIBUTES = frozenset({"title", "alt"})


def off_the_list(event_type: str, content: Any, *, staff: bool) -> dict[str, Any] | None:
    """What of an event is not on the allow-list, as the error's fields (``event_type``, and
    ``msgtype`` for a message), or None when all of it is."""
    if event_type not in EVENT_TYPES:
        return {"event_type": event_type}
    if event_type != MESSAGE:
        return None
    allowed = STAFF_MSGTYPES if staff else MSGTYPES
    for part in _contents(content):
        msgtype = msgtype_of(part)
        if msgtype not in allowed:
            return {"event_type": event_type, "msgtype": msgtype}
    return None


def msgtype_of(content: Any) -> str | None:
    """A message's ``msgtype``, or None when it has none that is a string."""
    msgtype = content.get("msgtype") if isinstance(content, Mapping) else None
    return msgtype if isinstance(msgtype, str) else None


def written_length(event_type: str, content: Any) -> int:
    """The longest text the sender wrote into an event, in code points (0 when none)."""
    if not isinstance(content, Mapping):
        return 0
    if event_type == REACTION:
        relation = content.get("m.relates_to")
        key = relation.get("key") if isinstance(relation, Mapping) else None
        return len(key) if isinstance(key, str) else 0
    if event_type == REDACTION:
        reason = content.get("reason")
        return len(reason) if isinstance(reason, str) else 0
    reply = is_reply(content)
    edit = isinstance(content.get("m.new_content"), Mapping)
    lengths = [len(text) for text in _texts(content, reply=reply, edit=edit)]
    if edit:
        lengths += [
            len(text) for text in _texts(content["m.new_content"], reply=False, edit=False)
        ]
    return max(lengths, default=0)


def is_reply(content: Mapping[str, Any]) -> bool:
    relation = content.get("m.relates_to")
    return isinstance(relation, Mapping) and isinstance(relation.get("m.in_reply_to"), Mapping)


def strip_reply_fallback(body: str) -> str:
    """A reply's ``body`` without the quoted original older clients put in front of it: the
    leading ``> `` lines and the blank line after them."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and lines[quoted].startswith(">"):
        quoted += 1
    if quoted < len(lines) and lines[quoted] == "":
        quoted += 1
    return "\n".join(lines[quoted:])


def visible_text(html: str, *, reply: bool) -> str:
    """The text a formatted body shows: no markup, entities as the character they stand for,
    shown attributes (titles, image stand-ins) included; a reply's ``<mx-reply>`` left out.
    Markup the parser cannot read (a broken ``<![...``) is all text: counted whole."""
    parser = _VisibleText(skip_reply=reply)
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser's way of refusing some declarations
        return html
    return "".join(parser.parts)


def _contents(content: Any) -> Iterator[Mapping[str, Any]]:
    """A message's content and, for an edit, the content it puts in place."""
    if isinstance(content, Mapping):
        yield content
        new_content = content.get("m.new_content")
        if isinstance(new_content, Mapping):
            yield new_content
    else:
        yield {}


def _texts(content: Any, *, reply: bool, edit: bool) -> Iterator[str]:
    if not isinstance(content, Mapping):
        return
    filename = content.get("filename")
    if isinstance(filename, str) and len(filename) > FILE_NAME_MAX:
        yield filename
    body = content.get("body")
    if isinstance(body, str) and _is_file_name(content, body):
        if len(body) > FILE_NAME_MAX:
            yield body
    elif isinstance(body, str):
        if reply:
            body = strip_reply_fallback(body)
        yield body.removeprefix(_EDIT_FALLBACK) if edit else body
    formatted = content.get("formatted_body")
    if isinstance(formatted, str):
        text = visible_text(formatted, reply=reply)
        yield text.removeprefix(_EDIT_FALLBACK) if edit else text


def _is_file_name(content: Mapping[str, Any], body: str) -> bool:
    """Whether a media message's body is the file's name rather than a caption."""
    if msgtype_of(content) not in MEDIA_MSGTYPES:
        return False
    filename = content.get("filename")
    return not isinstance(filename, str) or filename == body


class _VisibleText(HTMLParser):
    def __init__(self, *, skip_reply: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_reply = skip_reply
        self._in_reply = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply" and self._skip_reply:
            self._in_reply += 1
        elif not self._in_reply:
            self.parts.extend(v for k, v in attrs if k in _SHOWN_ATTRIBUTES and v)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._in_reply:
            self.parts.extend(v for k, v in attrs if k in _SHOWN_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply" and self._in_reply:
            self._in_reply -= 1

    def handle_data(self, data: str) -> None:
        if not self._in_reply:
            self.parts.append(data)
