"""Portal sessions are real Matrix logins; revoking access ends them at once."""

from __future__ import annotations

from tests.clients import ApiClient


async def test_client_session_is_a_real_login_and_revocation_ends_it(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    client = await api.session_for(practice_id, client_id="c1")
    who = await client.whoami()
    assert who.status == 200
    assert who.body["user_id"] == client.user_id
    assert client.user_id == f"@pb_client_{practice_id}_c1:practice.test"

    r = await api.call("DELETE", f"/practices/{practice_id}/clients/c1")
    assert r.status == 200, r.body
    assert (await client.whoami()).status == 401

    refused = await api.call("POST", f"/practices/{practice_id}/sessions", {"client_id": "c1"})
    assert refused.status == 403
    assert refused.errcode == "ORG.PRACTICEBRIDGE.CLIENT_REMOVED"


async def test_losing_portal_access_ends_sessions_and_restoring_it_works_again(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    first = await api.session_for(practice_id, client_id="c1")
    body = {
        "name": "Client c1",
        "email": "c1@example.com",
        "activated": True,
        "portal_access": False,
    }
    r = await api.call("PUT", f"/practices/{practice_id}/clients/c1", body)
    assert r.status == 200, r.body
    assert (await first.whoami()).status == 401
    refused = await api.call("POST", f"/practices/{practice_id}/sessions", {"client_id": "c1"})
    assert refused.errcode == "ORG.PRACTICEBRIDGE.NO_PORTAL_ACCESS"

    r = await api.call(
        "PUT", f"/practices/{practice_id}/clients/c1", body | {"portal_access": True}
    )
    assert r.status == 200
    again = await api.session_for(practice_id, client_id="c1")
    assert again.user_id == first.user_id
    assert (await again.whoami()).status == 200


async def test_non_activated_client_and_sub_record_are_refused_sessions(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("parent",))
    await api.put_client(
        practice_id, "pending", name="Pending", email="p@example.com", activated=False
    )
    await api.put_client(practice_id, "kid", name="Kid", family_primary_id="parent")
    r = await api.call("POST", f"/practices/{practice_id}/sessions", {"client_id": "pending"})
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.CLIENT_NOT_ACTIVATED")
    r = await api.call("POST", f"/practices/{practice_id}/sessions", {"client_id": "kid"})
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.SUB_RECORD")
    assert r.body["primary_id"] == "parent"


async def test_staff_session_and_removal(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id)
    staff = await api.session_for(practice_id, staff_id="s1")
    assert (await staff.whoami()).body["user_id"] == staff.user_id
    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1")
    assert r.status == 200
    assert (await staff.whoami()).status == 401
