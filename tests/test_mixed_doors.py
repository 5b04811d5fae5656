"""Mixed doors (README "Calling instead of proxying"): one replica proxies, another is called
by the authorization server through the decision API, both on one Redis. A DPoP proof sent to
both at the same instant is accepted exactly once: the replay check is the same atomic
`SET NX` whichever door the proof came through."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.support.dpop import DpopKey
from tests.support.process import SidecarProcess
from tests.support.redis_server import RedisServer
from tests.support.servers import RecordingUpstream, free_port

HTU = "https://as.example.com/token"
API_KEY = "an-api-key-that-is-long-enough-0123456789"
CC = "grant_type=client_credentials&client_id=app"


async def _proxy(session: aiohttp.ClientSession, replica: SidecarProcess, proof: str) -> str:
    async with session.post(replica.url + "/token", data=CC, headers={
            "Content-Type": "application/x-www-form-urlencoded", "DPoP": proof}) as response:
        return "accepted" if response.status == 200 else (await response.json())["error"]


async def _api(session: aiohttp.ClientSession, url: str, proof: str) -> str:
    async with session.post(url + "/api/auth/token", json={"parameters": CC, "dpop": proof},
                            headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        assert response.status == 200
        answer = await response.json()
        return "accepted" if answer["action"] == "OK" else answer["resultCode"]


async def test_a_proof_sent_to_both_doors_at_once_is_accepted_once(
        tmp_path: Path, upstream: RecordingUpstream, redis_server_session: RedisServer) -> None:
    (tmp_path / "api.keys").write_text(API_KEY + "\n")
    store = {"url": redis_server_session.url, "key_prefix": f"doors-{uuid.uuid4().hex}:"}
    api_port = free_port()
    proxying = SidecarProcess(tmp_path / "proxy.toml",
                              {"upstream": {"url": upstream.url}, "store": store})
    called = SidecarProcess(tmp_path / "api.toml", {
        "upstream": {"url": upstream.url}, "store": store,
        "server": {"api_listen": f"127.0.0.1:{api_port}"}, "api": {"key_file": "api.keys"}})
    await asyncio.gather(proxying.start(), called.start())
    try:
        key = DpopKey()
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                proof = key.proof(HTU)
                outcomes = await asyncio.gather(
                    _proxy(session, proxying, proof),
                    _api(session, f"http://127.0.0.1:{api_port}", proof))
                assert sorted(outcomes) in (["accepted", "dpop.jti_replayed"],
                                            ["accepted", "invalid_dpop_proof"]), outcomes
    finally:
        await asyncio.gather(proxying.stop(), called.stop())


async def test_the_api_listener_does_not_start_without_a_key(
        tmp_path: Path, upstream: RecordingUpstream) -> None:
    (tmp_path / "api.keys").write_text("# no key yet\n")
    replica = SidecarProcess(tmp_path / "api.toml", {
        "upstream": {"url": upstream.url},
        "server": {"api_listen": f"127.0.0.1:{free_port()}"}, "api": {"key_file": "api.keys"}})
    try:
        with pytest.raises(AssertionError, match=r"api\.keys: no secret in the file"):
            await replica.start(timeout=10)  # raises with the process's output when it exits
    finally:
        await replica.stop()
