"""The audit log (`GET /audit`, docs/api.md): who did what to whom and when, never content or
secrets; read by the portal backend for any practice and by an owner for their own."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.clients import ApiClient, eventually

CLIENT = {"name": "Client c1", "email": "c1@example.com", "activated": True, "portal_access": True}


async def _audit(api: ApiClient, practice_id: str, **params: str) -> list[dict[str, Any]]:
    r = await api.call("GET", "/audit", params={"practice_id": practice_id, **params})
    assert r.status == 200, r.body
    return list(r.body["entries"])


def _is_subsequence(expected: list[Any], actual: list[Any]) -> bool:
    remaining = iter(actual)
    return all(any(item == seen for seen in remaining) for item in expected)


async def _put(api: ApiClient, path: str, body: dict[str, Any]) -> Any:
    r = await api.call("PUT", path, body)
    assert r.status in (200, 201), r.body
    return r.body


async def test_every_directory_change_and_session_is_audited(
    api: ApiClient, practice_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = int(time.time() * 1000)
    base = f"/practices/{practice_id}"
    await _put(api, base, {"name": "Sunrise", "plan": "solo", "timezone": "Europe/Berlin"})
    await _put(api, base, {"name": "Sunrise Wellness", "plan": "team", "timezone": "UTC"})
    owner = (await _put(api, f"{base}/staff/own", _staff("owner")))["user_id"]
    s1 = (await _put(api, f"{base}/staff/s1", _staff("practitioner")))["user_id"]
    await _put(api, f"{base}/staff/s1", _staff("team_member"))
    c1 = (await _put(api, f"{base}/clients/c1", CLIENT))["user_id"]
    await _put(api, f"{base}/clients/c1", CLIENT | {"name": "Client One"})

    tokens = []
    for who in ({"staff_id": "own"}, {"staff_id": "s1"}, {"client_id": "c1"}, {"client_id": "c1"}):
        tokens.append((await api.session_for(practice_id, **who)).token)
    await _put(api, f"{base}/clients/c1", CLIENT | {"portal_access": False})
    await _put(api, f"{base}/clients/c1", CLIENT)
    tokens.append((await api.session_for(practice_id, client_id="c1")).token)
    assert (await api.call("DELETE", f"{base}/clients/c1")).status == 200
    assert (await api.call("DELETE", f"{base}/staff/s1")).status == 200

    entries = await _audit(api, practice_id)
    finished = int(time.time() * 1000)
    oldest_first = [(e["action"], e["target"]) for e in reversed(entries)]
    expected = [
        ("practice.created", practice_id),
        ("practice.updated", practice_id),
        ("staff.created", owner),
        ("staff.created", s1),
        ("staff.updated", s1),
        ("client.created", c1),
        ("client.updated", c1),
        ("session.minted", owner),
        ("session.minted", s1),
        ("session.minted", c1),
        ("session.minted", c1),
        ("client.access_revoked", c1),
        ("session.revoked", c1),
        ("client.access_granted", c1),
        ("session.minted", c1),
        ("client.removed", c1),
        ("session.revoked", c1),
        ("staff.removed", s1),
        ("session.revoked", s1),
    ]
    assert _is_subsequence(expected, oldest_first), oldest_first

    for entry in entries:
        assert entry["practice_id"] == practice_id
        assert entry["actor"] == "backend"
        assert started <= entry["ts"] <= finished
        assert isinstance(entry["id"], int)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    by_action = {(e["action"], e["target"]): e for e in entries}
    assert by_action[("session.revoked", c1)]["details"]["count"] >= 1
    assert by_action[("practice.updated", practice_id)]["details"]["plan"] == "team"
    assert by_action[("staff.updated", s1)]["details"]["role"] == "team_member"

    # No secret in the log, nor in the bridge's own log lines.
    text = json.dumps(entries)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in [*tokens, api.secret]:
        assert secret not in text
        assert secret not in logged


def _staff(role: str) -> dict[str, str]:
    return {"name": f"A {role}", "email": f"{role}@example.com", "role": role}


async def test_owner_reads_their_practices_log_and_nobody_else_does(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(
        practice_id, staff=(("own", "owner"), ("s1", "practitioner"), ("t1", "team_member"))
    )
    other = practice_id + "x"
    await api.setup_practice(other, staff=(("own", "owner"),))
    owner = await api.session_for(practice_id, staff_id="own")
    as_owner = await api.call("GET", "/audit", token=owner.token)
    assert as_owner.status == 200, as_owner.body
    assert as_owner.body["entries"] == await _audit(api, practice_id)
    assert {e["practice_id"] for e in as_owner.body["entries"]} == {practice_id}
    # The owner's own session was audited before they read the log.
    assert ("session.minted", owner.user_id) in {
        (e["action"], e["target"]) for e in as_owner.body["entries"]
    }

    # The backend acting for the owner reads the same; acting for anyone else is refused.
    r = await api.call("GET", "/audit", params={"user_id": owner.user_id})
    assert r.status == 200 and r.body["entries"] == as_owner.body["entries"]
    practitioner = await api.session_for(practice_id, staff_id="s1")
    team_member = await api.session_for(practice_id, staff_id="t1")
    client = await api.session_for(practice_id, client_id="c1")
    for who in (practitioner, team_member, client):
        r = await api.call("GET", "/audit", token=who.token)
        assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), (who.user_id, r.body)
        r = await api.call("GET", "/audit", params={"user_id": who.user_id})
        assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), (who.user_id, r.body)

    # The other practice's owner reads only their own practice's log.
    other_owner = await api.session_for(other, staff_id="own")
    r = await api.call("GET", "/audit", token=other_owner.token)
    assert r.status == 200, r.body
    assert {e["practice_id"] for e in r.body["entries"]} == {other}
    r = await api.call(
        "GET", "/audit", token=other_owner.token, params={"practice_id": practice_id}
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body

    # A removed owner reads nothing more: their session ended, and acting for them is refused.
    assert (await api.call("DELETE", f"/practices/{practice_id}/staff/own")).status == 200
    r = await api.call("GET", "/audit", token=owner.token)
    assert r.status == 401, r.body
    r = await api.call("GET", "/audit", params={"user_id": owner.user_id})
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body


async def test_audit_never_holds_message_content(api: ApiClient, practice_id: str) -> None:
    staff, client = await api.staff_and_client(
        practice_id, staff=(("own", "owner"), ("s1", "practitioner"))
    )
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status == 201, r.body
    room = r.body["chat_id"]
    body = "my private health question 7f3a9c"
    sent = await client.send(room, {"msgtype": "m.text", "body": body})
    assert sent.status == 200, sent.body
    await staff.send(room, {"msgtype": "m.text", "body": "reply about " + body})

    async def processed() -> bool:
        r = await api.call("GET", "/chats", token=staff.token)
        return any(c["chat_id"] == room and c["last_message_ts"] for c in r.body["chats"])

    await eventually(processed)
    entries = await _audit(api, practice_id)
    assert ("chat.created", room) in {(e["action"], e["target"]) for e in entries}
    created = next(e for e in entries if e["action"] == "chat.created")
    assert created["actor"] == staff.user_id
    text = json.dumps(entries)
    assert "7f3a9c" not in text
    for session in (staff, client):
        assert session.token not in text


async def test_audit_pages_backwards(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id, clients=("c1", "c2", "c3"))
    everything = await _audit(api, practice_id)
    assert len(everything) >= 5
    first = await _audit(api, practice_id, limit="2")
    assert first == everything[:2]
    rest = await _audit(api, practice_id, before=str(first[-1]["id"]), limit="1000")
    assert first + rest == everything


@pytest.mark.parametrize(
    ("params", "status", "errcode"),
    [
        ({}, 400, "M_MISSING_PARAM"),
        ({"practice_id": "no such practice!"}, 400, "M_INVALID_PARAM"),
        ({"practice_id": "nosuchpractice"}, 404, "ORG.PRACTICEBRIDGE.UNKNOWN_PRACTICE"),
        ({"practice_id": "{p}", "limit": "0"}, 400, "M_INVALID_PARAM"),
        ({"practice_id": "{p}", "limit": "lots"}, 400, "M_INVALID_PARAM"),
        ({"practice_id": "{p}", "before": "-1"}, 400, "M_INVALID_PARAM"),
    ],
)
async def test_bad_audit_queries_get_a_4xx(
    api: ApiClient, practice_id: str, params: dict[str, str], status: int, errcode: str
) -> None:
    await api.setup_practice(practice_id)
    params = {k: v.replace("{p}", practice_id) for k, v in params.items()}
    r = await api.call("GET", "/audit", params=params)
    assert (r.status, r.errcode) == (status, errcode), r.body


async def test_audit_needs_credentials(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id)
    r = await api.call("GET", "/audit", params={"practice_id": practice_id}, auth=False)
    assert (r.status, r.errcode) == (401, "M_MISSING_TOKEN")
    r = await api.call(
        "GET", "/audit", params={"practice_id": practice_id}, token="not-a-real-token"
    )
    assert (r.status, r.errcode) == (401, "M_UNKNOWN_TOKEN")
