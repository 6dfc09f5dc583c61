"""What a browser gets from the bridge before any page runs: CORS on the provisioning API for
the configured portal origins (and the shared secret refused from browsers), the Messenger's
files with a strict Content-Security-Policy, and the demo's session route."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from mautrix.util.async_db import Database

from appservice.messenger.demo import DemoSessions
from bridge.app import Bridge
from config import ConfigError, load_config
from tests.clients import ApiClient, HomeserverInfo
from tests.conftest import bridge_config

PORTAL = "https://portal.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture
async def cors_bridge(
    homeserver: HomeserverInfo, database: Database, tmp_path: Path
) -> AsyncIterator[tuple[Bridge, ApiClient, DemoSessions]]:
    config = bridge_config(homeserver, tmp_path)
    config.provisioning.cors_origins = [PORTAL]
    instance = Bridge(config, db=database)
    demo = DemoSessions()
    demo.install(instance.az.app)
    await instance.start()
    api = ApiClient(config, homeserver)
    try:
        yield instance, api, demo
    finally:
        await api.close()
        await instance.stop()


async def test_preflight_from_a_portal_origin_allows_the_token_header(cors_bridge) -> None:
    _, api, _ = cors_bridge
    async with api.session.options(
        api.base + "/chats",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == PORTAL
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert "DELETE" in resp.headers["Access-Control-Allow-Methods"]
        assert "Origin" in resp.headers.getall("Vary")


async def test_other_origins_get_no_cors_headers(cors_bridge) -> None:
    _, api, _ = cors_bridge
    async with api.session.options(
        api.base + "/chats",
        headers={"Origin": OTHER, "Access-Control-Request-Method": "GET"},
    ) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with api.session.get(api.base + "/openapi.json", headers={"Origin": OTHER}) as resp:
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_user_token_from_a_portal_origin_reads_answers_and_errors(
    cors_bridge, practice_id: str
) -> None:
    _, api, _ = cors_bridge
    await api.setup_practice(practice_id)
    staff = await api.session_for(practice_id, staff_id="s1")
    headers = {"Origin": PORTAL, "Authorization": f"Bearer {staff.token}"}
    async with api.session.get(api.base + "/chats", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == PORTAL
        assert (await resp.json())["chats"] == []
    # An ended session's 401 is readable too: the page shows "signed out" instead of retrying.
    headers["Authorization"] = "Bearer syt_not_a_token"
    async with api.session.get(api.base + "/chats", headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["Access-Control-Allow-Origin"] == PORTAL
        assert (await resp.json())["errcode"] == "M_UNKNOWN_TOKEN"


async def test_shared_secret_from_a_browser_is_refused(cors_bridge, practice_id: str) -> None:
    _, api, _ = cors_bridge
    for origin in (PORTAL, OTHER):
        reply = await api.session.put(
            f"{api.base}/practices/{practice_id}",
            json={"name": "Sunrise", "plan": "team", "timezone": "UTC"},
            headers={"Origin": origin, "Authorization": f"Bearer {api.secret}"},
        )
        assert reply.status == 403
        assert (await reply.json())["errcode"] == "M_FORBIDDEN"
    # Nothing happened: the practice does not exist.
    assert (await api.call("GET", f"/audit?practice_id={practice_id}")).status == 404
    # The portal backend (no Origin) still may.
    assert (
        await api.call(
            "PUT",
            f"/practices/{practice_id}",
            {"name": "Sunrise", "plan": "team", "timezone": "UTC"},
        )
    ).status == 201


async def test_messenger_files_carry_a_strict_content_security_policy(cors_bridge) -> None:
    bridge, api, _ = cors_bridge
    root = f"http://127.0.0.1:{bridge.config.appservice.port}/messenger"
    async with aiohttp.ClientSession() as http:
        async with http.get(root + "/", allow_redirects=False) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert f"frame-ancestors 'self' {PORTAL}" in csp
        assert f"connect-src 'self' {api.homeserver.url}" in csp
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        async with http.get(root + "/embed.js") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/javascript"
            assert "PracticeMessenger" in await resp.text()
        prefix = bridge.config.provisioning.prefix
        async with http.get(root + "/app.html") as resp:
            page = await resp.text()
            assert f'name="provisioning-prefix" content="{prefix}"' in page
            assert resp.headers["Cache-Control"] == "no-cache"
            etag = resp.headers["ETag"]
        async with http.get(root + "/app.html", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        # The page asks for its modules under the files' version; those answers are kept.
        found = re.search(r'<script type="module" src="js/main\.js\?v=(\w+)">', page)
        assert found is not None, page
        version = found[1]
        async with http.get(f"{root}/js/main.js?v={version}") as resp:
            assert "immutable" in resp.headers["Cache-Control"]
            assert resp.headers["Content-Security-Policy"] == csp
            assert f'from "./api.js?v={version}";' in await resp.text()
        async with http.get(f"{root}/js/main.js?v=other") as resp:
            assert resp.headers["Cache-Control"] == "no-cache"
        for path in ("/../config.yaml", "/js/../../serve.py", "/nothing.js"):
            async with http.get(root + path) as resp:
                assert resp.status == 404, path


async def test_demo_links_mint_a_fresh_session_for_their_person(cors_bridge) -> None:
    bridge, api, demo = cors_bridge
    minted = []

    async def mint() -> dict[str, str]:
        minted.append(1)
        return {
            "user_id": "@someone:practice.test",
            "access_token": "t",
            "device_id": "D",
            "homeserver": api.homeserver.url,
        }

    code = demo.add("Dana Whitfield", mint)
    url = f"http://127.0.0.1:{bridge.config.appservice.port}/messenger/demo/session"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"code": code}) as resp:
            assert resp.status == 200
            assert (await resp.json())["name"] == "Dana Whitfield"
        async with http.post(url, json={"code": code + "x"}) as resp:
            assert resp.status == 403
        async with http.post(url, data=b"not json") as resp:
            assert resp.status == 400
    assert len(minted) == 1


@pytest.mark.parametrize(
    "origins",
    [
        ["https://portal.example.com/"],
        ["portal.example.com"],
        ["https://p.example/x"],
        "https://a",
    ],
)
def test_cors_origins_must_be_origins(tmp_path: Path, homeserver: HomeserverInfo, origins) -> None:
    config = bridge_config(homeserver, tmp_path)
    with pytest.raises(ConfigError, match="provisioning.cors_origins"):
        config.provisioning.cors_origins = origins
    good = ["https://portal.example.com", "http://127.0.0.1:8080"]
    config.provisioning.cors_origins = good
    config.save()
    assert load_config(config.path).provisioning.cors_origins == good
