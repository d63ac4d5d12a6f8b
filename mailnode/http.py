"""HTTP listener: Prometheus /metrics, and health checks for load balancers.

/health   200 while the process runs and its journals accept writes (liveness)
/ready    200 when also connected to ZooKeeper (cluster mode)
/primary  200 when this node is primary of ?shard=N (of any shard without it)
/spare    200 when this node is a following spare of ?shard=N (of any shard)
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def base_app(healthy: Callable[[], tuple[bool, dict]]) -> web.Application:
    """/metrics and /health, as every process of the product serves them (node, archive)."""

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        ok, doc = healthy()
        return web.json_response(doc, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def serve_app(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


async def start_http(node, host: str, port: int) -> web.AppRunner:

    def shards_with(request: web.Request, role: str):
        wanted = request.query.get("shard")
        if wanted is not None and not wanted.isdigit():
            raise web.HTTPBadRequest(text="shard must be a number\n")
        shards = node.shards.values() if wanted is None else [node.shards.get(int(wanted))]
        # A spare counts only while it follows somebody (not while idle or self-fenced).
        return [
            s
            for s in shards
            if s is not None and s.role == role and (role == "primary" or s.primary_address)
        ]

    def role_check(role: str):
        async def handler(request: web.Request) -> web.Response:
            connected = node.agent.connected
            matches = shards_with(request, role) if connected else []
            doc = {
                "node": node.name,
                role: [s.id for s in matches],
                "zookeeper_connected": connected,
            }
            return web.json_response(doc, status=200 if matches else 503)

        return handler

    async def ready(request: web.Request) -> web.Response:
        ok, doc = node.healthy()
        connected = node.agent.connected
        doc["zookeeper_connected"] = connected
        return web.json_response(doc, status=200 if ok and connected else 503)

    app = base_app(node.healthy)
    app.router.add_get("/ready", ready)
    app.router.add_get("/primary", role_check("primary"))  # for a load balancer: send shard N here?
    app.router.add_get("/spare", role_check("spare"))
    return await serve_app(app, host, port)
