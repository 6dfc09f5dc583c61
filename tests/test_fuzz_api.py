"""Property-based fuzzing of the provisioning API from its served OpenAPI document (schemathesis).

Schemathesis reads ``{prefix}/openapi.json`` from the running bridge and generates requests for
every operation: valid ones (positive) and ones that break the document's rules (negative:
wrong types, missing fields, values out of range or pattern). Each operation is fuzzed in both
auth modes, the portal backend's shared secret (acting for a real portal user now and then) and
a portal user's minted Matrix token, against a practice with real people and chats, so that the
requests reach past the checks at the door. Every answer must:

- never be a 5xx (502 included: Synapse is up, so a 502 would be the bridge's fault);
- have a status, content type and body the document lists for that operation (schemathesis'
  conformance checks), and for an error an errcode the document names for that status
  (:class:`tests.test_openapi.Contract`);
- refuse what the document says is invalid with a 4xx (schemathesis' negative data check).

The run is bounded and repeatable: a fixed number of examples per operation and mode, and
Hypothesis derandomized (the same requests every run).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import Bridge
from tests.clients import ApiClient, Reply, eventually
from tests.test_openapi import contract

EXAMPLES = 12  # per operation, auth mode and generation mode
C = contract()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class World:
    """The practice the fuzzer may stumble into: ids and tokens of real people and chats."""

    base: str
    secret: str
    practice_id: str
    staff_ids: list[str]
    client_ids: list[str]
    users: list[str]  # Matrix user ids of the people above
    tokens: list[str]  # Matrix tokens of a practitioner and a client
    chats: list[str]


async def _world(api: ApiClient, bridge: Bridge, practice_id: str) -> World:
    await api.setup_practice(
        practice_id,
        staff=(("boss", "owner"), ("s1", "practitioner"), ("t1", "team_member")),
        clients=("c1", "c2"),
    )
    practitioner = await api.session_for(practice_id, staff_id="s1")
    client = await api.session_for(practice_id, client_id="c1")
    direct = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=practitioner.token)
    group = await api.call(
        "POST",
        "/chats/group",
        {"name": "Group", "client_ids": ["c1", "c2"], "staff_ids": ["t1"]},
        token=practitioner.token,
    )
    assert direct.status == 201 and group.status == 201, (direct, group)
    users = [
        str(bridge.mapper.user_id("staff", practice_id, "boss")),
        practitioner.user_id,
        client.user_id,
    ]
    return World(
        base=api.base,
        secret=api.secret,
        practice_id=practice_id,
        staff_ids=["boss", "s1", "t1"],
        client_ids=["c1", "c2"],
        users=users,
        tokens=[practitioner.token, client.token],
        chats=[direct.body["chat_id"], group.body["chat_id"]],
    )


def _steer(case: Any, data: st.DataObject, world: World, acting_as: str | None) -> None:
    """Now and then, swap generated ids for real ones, so that requests get past 404s; with a
    Matrix token, mostly leave out ``user_id`` (or repeat the token's own), as a frontend does."""
    known = {
        "practice_id": [world.practice_id],
        "staff_id": world.staff_ids,
        "client_id": world.client_ids,
        "chat_id": world.chats,
    }
    for name, values in known.items():
        if name in (case.path_parameters or {}) and data.draw(st.booleans(), label=name):
            case.path_parameters[name] = data.draw(st.sampled_from(values), label=f"{name}=")
    if isinstance(case.body, dict):
        for name, values in (("client_id", world.client_ids), ("staff_id", world.staff_ids)):
            if name in case.body and data.draw(st.booleans(), label=f"body {name}"):
                case.body[name] = data.draw(st.sampled_from(values), label=f"body {name}=")
        for name, values in (("client_ids", world.client_ids), ("staff_ids", world.staff_ids)):
            if name in case.body and data.draw(st.booleans(), label=f"body {name}"):
                chosen = data.draw(st.lists(st.sampled_from(values), max_size=2, unique=True))
                case.body[name] = chosen
        if case.body.get("chat_id") is not None and data.draw(st.booleans(), label="body chat"):
            case.body["chat_id"] = data.draw(st.sampled_from(world.chats), label="body chat=")
    query = dict(case.query or {})
    if acting_as is None:
        if data.draw(st.integers(0, 3), label="act for a real user") > 0:
            query["user_id"] = data.draw(st.sampled_from(world.users), label="user_id=")
    elif data.draw(st.integers(0, 3), label="user_id as generated") > 0:
        if data.draw(st.booleans(), label="repeat own user_id"):
            query["user_id"] = acting_as
        else:
            query.pop("user_id", None)
    if "practice_id" in query and data.draw(st.booleans(), label="audit a real practice"):
        query["practice_id"] = world.practice_id
    case.query = query


def _reply(response: Any) -> Reply:
    if response.headers.get("Content-Type", "").startswith("application/json"):
        try:
            return Reply(response.status_code, response.json())
        except ValueError:
            pass
    return Reply(response.status_code, response.content)


def _fuzz_operation(
    operation: Any,
    world: World,
    mode: GenerationMode,
    token: str,
    acting_as: str | None,
    answered: defaultdict[str, set[int]],
) -> None:
    """Fuzz one operation in one mode; raises on the first answer that breaks the rules."""
    checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if not mode.is_negative:
            _steer(case, data, world, acting_as)
        response = case.call(base_url=world.base, session=session, headers=headers, timeout=60)
        answered[operation.label].add(response.status_code)
        case.validate_response(response, checks=checks, headers=headers)
        reply = _reply(response)
        if response.status_code >= 400 and isinstance(reply.body, dict):
            path = response.request.path_url.split("?", 1)[0]
            C.check(case.method, path.removeprefix(_prefix(world)), reply)

    try:
        run()
    finally:
        session.close()


def _prefix(world: World) -> str:
    return "/" + world.base.split("/", 3)[3]


def _fuzz(world: World, auth: str) -> tuple[list[str], dict[str, set[int]]]:
    """Fuzz every authenticated operation in one auth mode: the problems found, and the
    statuses each operation answered."""
    schema = schemathesis.openapi.from_url(world.base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Removing people and chats goes last, so that the other operations still find them.
    operations.sort(key=lambda op: op.method.upper() == "DELETE" and op.path.endswith("}"))
    runs: list[tuple[GenerationMode, str, str | None]]
    if auth == "shared secret":
        runs = [
            (GenerationMode.POSITIVE, world.secret, None),
            (GenerationMode.NEGATIVE, world.secret, None),
        ]
    else:
        (practitioner, client), (s1, c1) = world.tokens, world.users[1:]
        runs = [
            (GenerationMode.POSITIVE, practitioner, s1),
            (GenerationMode.POSITIVE, client, c1),
            (GenerationMode.NEGATIVE, practitioner, s1),
        ]
    problems: list[str] = []
    answered: defaultdict[str, set[int]] = defaultdict(set)
    for operation in operations:
        if operation.definition.raw.get("security", schema.raw_schema["security"]) == []:
            continue
        for mode, token, acting_as in runs:
            try:
                _fuzz_operation(operation, world, mode, token, acting_as, answered)
            except Exception as e:  # every operation's problem, then fail once
                who = f" as {acting_as}" if acting_as else ""
                problems.append(f"{auth}{who}, {mode.value}, {operation.label}: {e}")
    return problems, answered


@pytest.mark.parametrize("auth", ["matrix token", "shared secret"])
async def test_fuzzed_requests_get_documented_answers_never_a_server_error(
    api: ApiClient, bridge: Bridge, practice_id: str, auth: str
) -> None:
    world = await _world(api, bridge, practice_id)
    # Schemathesis and requests are synchronous: they run in a thread while the bridge keeps
    # serving in this event loop.
    problems, answered = await asyncio.to_thread(_fuzz, world, auth)
    assert not problems, "\n\n".join(problems)
    # The fuzzer got past authentication and validation into the routes themselves.
    succeeded = sorted(op for op, statuses in answered.items() if any(s < 300 for s in statuses))
    assert len(succeeded) >= (16 if auth == "shared secret" else 10), succeeded


# -- hostile transactions into a real chat ------------------------------------------------------

_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_JSON = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
_CONTENT_KEYS = [
    "body",
    "msgtype",
    "formatted_body",
    "m.relates_to",
    "m.new_content",
    "membership",
    "url",
    "info",
    "filename",
    "is_direct",
    "org.practicebridge.auto_reply",
    "client_user_ids",
    "client_message_limit",
    "practice_id",
]
_BODIES = st.sampled_from(
    ["!pb", "!pb help", "!pb pin", "!pb share t1", "!pb delete", "!pb confirm delete x", "hi"]
)


def _hostile_events(room: str, senders: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    content = st.one_of(
        _JSON,
        st.dictionaries(st.sampled_from(_CONTENT_KEYS), _JSON | _BODIES, max_size=5),
        st.fixed_dictionaries({"msgtype": st.just("m.text"), "body": _BODIES | _JSON}),
    )
    types = (
        st.sampled_from(
            [
                "m.room.message",
                "m.room.member",
                "m.room.redaction",
                "m.reaction",
                "m.room.power_levels",
                "m.room.name",
                "org.practicebridge.chat",
                "org.practicebridge.policy",
                "m.room.encrypted",
                "org.example.unknown",
            ]
        )
        | _JSON
    )
    return st.fixed_dictionaries(
        {
            "event_id": st.uuids().map(lambda u: f"${u.hex}"),
            "room_id": st.sampled_from([room, room, "!elsewhere:practice.test", 7, None]),
            "type": types,
            "sender": st.sampled_from(senders),
            "content": content,
        },
        optional={
            "state_key": st.sampled_from(["", *[s for s in senders if isinstance(s, str)]])
            | _JSON,
            "origin_server_ts": _JSON,
            "redacts": _JSON,
            "unsigned": _JSON,
        },
    )


def _hostile_ephemeral(room: str, senders: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    receipt = st.fixed_dictionaries(
        {
            "type": st.just("m.receipt"),
            "room_id": st.just(room),
            "content": st.dictionaries(
                st.text(max_size=12),
                st.dictionaries(
                    st.sampled_from(["m.read", "m.read.private", "x"]),
                    st.dictionaries(
                        st.sampled_from([s for s in senders if isinstance(s, str)]), _JSON
                    ),
                )
                | _JSON,
                max_size=2,
            ),
        }
    )
    other = st.fixed_dictionaries(
        {"type": st.sampled_from(["m.typing", "m.presence", "x"]) | _JSON, "content": _JSON},
        optional={"room_id": st.sampled_from([room, 5])},
    )
    return receipt | other


def _send_hostile(base: str, hs_token: str, room: str, senders: list[Any]) -> list[str]:
    """Hypothesis-generated transactions; the ids of the events they carried."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {hs_token}"}
    sent: list[str] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        events=st.lists(_hostile_events(room, senders), min_size=1, max_size=5),
        ephemeral=st.lists(_hostile_ephemeral(room, senders), max_size=3),
        txn=st.uuids(),
    )
    def deliver(events: list[dict[str, Any]], ephemeral: list[dict[str, Any]], txn: Any) -> None:
        body = {"events": events, "ephemeral": ephemeral}
        url = f"{base}/_matrix/app/v1/transactions/{txn.hex}"
        response = session.put(url, json=body, headers=headers, timeout=60)
        assert response.status_code == 200, (response.status_code, response.text, body)
        sent.extend(ev["event_id"] for ev in events)

    try:
        deliver()
    finally:
        session.close()
    return sent


async def test_hostile_transactions_in_a_real_chat_never_stop_the_pipeline(
    api: ApiClient, bridge: Bridge, practice_id: str
) -> None:
    """Events of every type and shape, as Synapse could deliver them, into a chat the bridge
    owns and from its real members: each is stored and processed or skipped, and afterwards the
    client's next real message is processed and the chat list answers as before."""
    await api.setup_practice(
        practice_id, staff=(("s1", "practitioner"), ("t1", "team_member")), clients=("c1",)
    )
    staff = await api.session_for(practice_id, staff_id="s1")
    client = await api.session_for(practice_id, client_id="c1")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    room = r.body["chat_id"]
    senders: list[Any] = [client.user_id, staff.user_id, bridge.mapper.bot_mxid, "@x:y", 5, None]
    base = f"http://127.0.0.1:{bridge.config.appservice.port}"
    hostile = await asyncio.to_thread(
        _send_hostile, base, bridge.config.appservice.hs_token, room, senders
    )
    assert hostile

    # The pipeline lives: the client's next real message is processed, after all of them.
    auto = {"enabled": True, "message": "Away", "periods": []}
    r = await api.call("PUT", "/settings", {"autoresponder": auto}, token=staff.token)
    assert r.status == 200, r.body
    sent = await client.send(room, {"msgtype": "m.text", "body": "Still there?"})
    assert sent.status == 200, sent.body
    last = sent.body["event_id"]

    async def processed() -> bool:
        outcome = await bridge.db.fetchval(
            "SELECT outcome FROM event_queue WHERE event_id=$1", last
        )
        return outcome == "ok"

    await eventually(processed, timeout=60)
    rows = await bridge.db.fetch("SELECT event_id, outcome FROM event_queue")
    outcomes = {r["event_id"]: r["outcome"] for r in rows if r["event_id"] in set(hostile)}
    assert set(outcomes) == set(hostile)  # every one stored
    # Processed, or (shapes no homeserver sends, such as a list for a type) skipped.
    assert all(o == "ok" or o.startswith("failed:") for o in outcomes.values()), outcomes
    r = await api.call("GET", "/chats", token=staff.token)
    assert r.status == 200 and [c["chat_id"] for c in r.body["chats"]] == [room], r.body


async def test_export_days_found_by_the_fuzzer_are_answered(
    api: ApiClient, bridge: Bridge, practice_id: str
) -> None:
    """Days before the Unix epoch, and the last day of the calendar, once made the homeserver
    refuse the export's time stamps (a 502): the fuzzer's finds, kept as a regression."""
    world = await _world(api, bridge, practice_id)
    chat = world.chats[0]
    for window in [
        {"from": "0966-09-04", "to": "5626-06-09"},
        {"from": "0001-01-01", "to": "9999-12-31"},
        {"to": "1969-12-31"},
        {"from": "9999-12-31"},
    ]:
        reply = await api.call(
            "GET",
            f"/chats/{chat}/export",
            params={"format": "csv", **window},
            token=world.tokens[0],
        )
        assert reply.status == 200, (window, reply)
