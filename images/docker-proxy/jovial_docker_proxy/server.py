"""The docker-proxy's I/O: an aiohttp server on :2375 (the hub's DOCKER_HOST) that asks the policy
about every call, makes the lookups it asks for through the engine's socket, and forwards allowed
calls there, streaming the answers (the event stream and logs stay open as long as the hub reads).

A refusal is HTTP 403 with {"message": "<the rule broken>"} (the Docker SDK shows `message` to the
hub's operator) and one log line; allowed writes are logged too, reads are not. Counters for the
benchmarks are served as JSON on the container's loopback only (127.0.0.1:9999/counters).
"""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from .policy import Allowed, Call, Decision, Facts, NeedFacts, NotFound, Refused, decide
from .settings import Settings, SettingsError, settings_from_env

log = logging.getLogger("jovial.docker-proxy")

DOCKER_SOCKET = "/var/run/docker.sock"
LISTEN_PORT = 2375
COUNTERS_HOST, COUNTERS_PORT = "127.0.0.1", 9999
MAX_BODY = 4 * 2**20  # a config holds at most 500 KB (base64: about 670 KB); a service spec far less
LOOKUP_ROUNDS = 3  # a decision needs one round (the network and configs, or the object to remove); more is a bug
# Hop-by-hop headers (RFC 9110 7.6.1) and those the two sides set themselves; Upgrade above all:
# nothing is ever hijacked (attach, exec) through this proxy.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
     "trailer", "transfer-encoding", "upgrade", "host", "content-length"}
)


@dataclass
class Counters:
    """Every request received since the start (allowed or not), and how each ended."""

    requests: int = 0
    allowed: int = 0
    refused: int = 0
    not_found: int = 0
    errors: int = 0


SETTINGS = web.AppKey("settings", Settings)
COUNTERS = web.AppKey("counters", Counters)


class EngineError(Exception):
    """The engine did not answer a lookup as expected."""


class Engine:
    """The Docker engine behind its Unix socket (one connection pool for lookups and forwarding)."""

    def __init__(self, socket_path: str) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=socket_path, limit=0),
            # No overall or read timeout: the event stream and followed logs stay open for hours.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    @staticmethod
    def url(path_and_query: str) -> URL:
        """The engine's URL for a path (already checked by the policy: sent exactly as it came)."""
        return URL(f"http://docker{path_and_query}", encoded=True)

    async def inspect(self, path: str) -> Mapping[str, Any] | None:
        """GET `path` from the engine: its JSON, or None when the engine says 404."""
        async with self.session.get(self.url(path)) as reply:
            if reply.status == 404:
                return None
            if reply.status != 200:
                raise EngineError(f"GET {path}: HTTP {reply.status} {(await reply.text())[:200]}")
            found = await reply.json(content_type=None)
            if not isinstance(found, dict):
                raise EngineError(f"GET {path}: not a JSON object")
            return found

    async def look_up(self, need: NeedFacts, facts: Facts) -> Facts:
        """`facts` with what `need` asks for added (names and IDs were checked by the policy)."""
        networks, configs, objects = dict(facts.networks), dict(facts.configs), dict(facts.objects)
        for name in need.networks:
            found = await self.inspect(f"/networks/{name}")
            networks[name] = found.get("Id") if found else None
        for config_id in need.configs:
            configs[config_id] = await self.inspect(f"/configs/{config_id}")
        for key in need.objects:
            objects[key] = await self.inspect(f"/{key}")
        return Facts(networks=networks, configs=configs, objects=objects)

    async def close(self) -> None:
        await self.session.close()


ENGINE = web.AppKey("engine", Engine)


def _message(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


async def _decide(call: Call, settings: Settings, engine: Engine) -> Decision:
    facts = Facts()
    for _ in range(LOOKUP_ROUNDS):
        decision = decide(call, settings, facts)
        if not isinstance(decision, NeedFacts):
            return decision
        facts = await engine.look_up(decision, facts)
    return Refused(f"{call.method} {call.path}: the policy kept asking for lookups (a bug in the proxy).")


async def handle(request: web.Request) -> web.StreamResponse:
    """Every call to the Docker API: decide, then refuse, answer 404 or forward."""
    settings, engine, counters = request.app[SETTINGS], request.app[ENGINE], request.app[COUNTERS]
    counters.requests += 1
    path, _, query = request.raw_path.partition("?")
    body = await request.read() if request.method == "POST" else b""
    call = Call(request.method, path, query, body)
    peer = request.remote or "?"
    try:
        decision = await _decide(call, settings, engine)
    except (aiohttp.ClientError, EngineError, OSError) as e:
        counters.errors += 1
        log.error("error deciding %s %s from %s: the engine's lookup failed: %s", request.method, path, peer, e)
        return _message(502, f"docker-proxy: the Docker engine did not answer a lookup: {e}")
    if isinstance(decision, Refused):
        counters.refused += 1
        log.warning("refused %s %s from %s: %s", request.method, request.raw_path, peer, decision.reason)
        return _message(403, f"docker-proxy refused this call: {decision.reason}")
    if isinstance(decision, NotFound):
        counters.not_found += 1
        return _message(404, decision.message)
    assert isinstance(decision, Allowed)
    counters.allowed += 1
    if decision.write:
        log.info("allowed %s %s from %s: %s", request.method, path, peer, decision.write)
    try:
        return await forward(request, engine, decision)
    except (aiohttp.ClientError, OSError) as e:
        counters.errors += 1
        log.error("error forwarding %s %s from %s: %s", request.method, path, peer, e)
        return _message(502, f"docker-proxy: the Docker engine did not answer: {e}")


async def forward(request: web.Request, engine: Engine, decision: Allowed) -> web.StreamResponse:
    """Send the allowed call to the engine and stream its answer back as it comes."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    if decision.body is not None:
        headers["Content-Type"] = "application/json"
    async with engine.session.request(
        request.method, engine.url(decision.path), headers=headers, data=decision.body, allow_redirects=False
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        if upstream.content_length is not None and request.method != "HEAD":
            response.content_length = upstream.content_length
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response


async def counters_handler(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[COUNTERS]))


def make_apps(settings: Settings, socket_path: str = DOCKER_SOCKET) -> tuple[web.Application, web.Application]:
    """The proxy's application and the loopback counters' application (sharing the counters)."""
    counters = Counters()
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS], app[COUNTERS] = settings, counters
    app.router.add_route("*", "/{tail:.*}", handle)

    async def engine_lifetime(app: web.Application) -> AsyncIterator[None]:
        app[ENGINE] = Engine(socket_path)
        yield
        await app[ENGINE].close()

    app.cleanup_ctx.append(engine_lifetime)
    stats = web.Application()
    stats[COUNTERS] = counters
    stats.router.add_get("/counters", counters_handler)
    return app, stats


async def start(
    settings: Settings, socket_path: str = DOCKER_SOCKET, host: str = "0.0.0.0", port: int = LISTEN_PORT,
    counters_port: int = COUNTERS_PORT,
) -> list[web.AppRunner]:
    """Start both servers; the runners (cleanup() each to stop)."""
    app, stats = make_apps(settings, socket_path)
    # handler_cancellation: a client that goes away (e.g. a hub ending its event stream) ends the
    # forwarded call at once instead of at the engine's next event.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    stats_runner = web.AppRunner(stats, access_log=None)
    await runner.setup()
    await stats_runner.setup()
    await web.TCPSite(runner, host, port).start()
    await web.TCPSite(stats_runner, COUNTERS_HOST, counters_port).start()
    return [runner, stats_runner]


async def serve(settings: Settings, socket_path: str) -> None:
    """Run until SIGTERM or SIGINT."""
    runners = await start(settings, socket_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "docker-proxy on :%d for %s; bind mounts under %s, network %s, images %s, servers named %s*, placed on %s",
        LISTEN_PORT, socket_path, settings.fs_root, settings.network, ", ".join(sorted(settings.images)),
        settings.object_prefix, settings.placement,
    )
    await stop.wait()
    for runner in reversed(runners):
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = settings_from_env(os.environ)
    except SettingsError as e:
        print(f"jovial docker-proxy cannot start: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    asyncio.run(serve(settings, os.environ.get("JOVIAL_DOCKER_SOCKET", DOCKER_SOCKET)))
