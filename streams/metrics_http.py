"""``/metrics`` over HTTP for any mailwarden process that keeps a Prometheus registry."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

# The text format every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve_metrics(exposition: Callable[[], bytes], host: str, port: int) -> web.AppRunner:
    """Serve ``exposition()`` on ``host:port/metrics`` (port 0: any free port).

    Stop it with ``await runner.cleanup()``; ``runner.addresses`` tells the port.
    """

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
