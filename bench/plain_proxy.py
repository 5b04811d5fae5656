"""The baseline: a plain aiohttp pass-through of POST /token (and of GET /api/..., for
bench/resource.py), no checks at all.

    python bench/plain_proxy.py 127.0.0.1:8081 http://127.0.0.1:9000

The performance targets are ratios to this, measured in the same run on the same core: it is
what any aiohttp proxy costs (server parse, one pooled upstream request, answer), so what the
sidecar adds on top of it is its own. It runs on uvloop, like the sidecar by default.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import uvloop
from aiohttp import web


async def main(listen: str, upstream: str) -> None:
    session = aiohttp.ClientSession()

    async def token(request: web.Request) -> web.Response:
        body = await request.read()
        async with session.post(upstream + request.path, data=body,
                                headers={"Content-Type": request.content_type}) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type=answer.content_type)

    async def api(request: web.Request) -> web.Response:
        # bench/resource.py's baseline: the API call passed through, its Authorization too.
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "DPoP")}
        async with session.get(upstream + request.path_qs, headers=headers) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type=answer.content_type)

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/api/{tail:.*}", api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host, int(port)).start()
    try:
        await asyncio.Event().wait()  # until SIGTERM
    finally:
        await session.close()
        await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2]))
