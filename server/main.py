"""The signaling server application (FastAPI on uvicorn).

``/health`` for liveness; ``/ws`` a WebSocket per party: the first message joins a room (two
parties at most), then offer/answer/candidate/key/bye are relayed to the other party. Malformed,
oversized, unknown or out-of-order messages get an ``error`` message and the connection stays
usable; a party that vanishes frees its slot and the other is told. It never touches audio or keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from csss_core import __version__
from server.hub import LISTENER, PARTY, Hub, LocalHub, RedisHub, RoomFull
from server.messages import CLIENT_MESSAGE, MAX_MESSAGE_BYTES, Error, Join, Joined, KeyExchange
from server.settings import Settings

log = logging.getLogger("csss.server")

STATIC = Path(__file__).parent / "static"
# frames above this are refused by the WebSocket layer itself (close 1009) before any parsing
WS_MAX_FRAME = 2 * MAX_MESSAGE_BYTES


class _Closed(Exception):
    """The server ends this connection (the reason was already sent)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    """One party's signaling connection: limits, state, and what the hub hands it."""

    def __init__(self, ws: WebSocket, s: Settings) -> None:
        self.ws = ws
        self.s = s
        self.id = uuid.uuid4().hex
        self.role = PARTY
        self.room: str | None = None
        self.alone_since: float | None = None
        self.errors = 0
        self.tokens = float(s.rate_burst)
        self.refill = time.monotonic()
        self.opened = self.refill
        self._send_lock = asyncio.Lock()
        self.changed = asyncio.Event()  # the other party came or went: deadlines change

    async def deliver(self, text: str, event: str | None = None) -> None:
        """Send a text frame (from the hub: the other party's message, or an event)."""
        if event == "joined":
            self.alone_since = None
            self.changed.set()
        elif event == "left":
            self.alone_since = time.monotonic()
            self.changed.set()
        async with self._send_lock:
            await self.ws.send_text(text)

    async def error(self, code: str, message: str) -> None:
        """Refuse one message; too many refusals end the connection."""
        self.errors += 1
        await self.deliver(Error(code=code, message=message).model_dump_json())
        if self.errors >= self.s.max_errors:
            raise _Closed(1008, "too many refused messages")

    def take_token(self) -> bool:
        """Token bucket: ``rate_per_s`` sustained, ``rate_burst`` at once."""
        now = time.monotonic()
        self.tokens = min(float(self.s.rate_burst), self.tokens + (now - self.refill) * self.s.rate_per_s)
        self.refill = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def timeout(self) -> float | None:
        """Seconds until this connection must have done something (None: no deadline)."""
        if self.room is None:
            return max(0.0, self.s.join_timeout_s - (time.monotonic() - self.opened))
        if self.alone_since is not None:
            return max(0.0, self.s.wait_timeout_s - (time.monotonic() - self.alone_since))
        return None

    def expired(self) -> _Closed | None:
        """The timeout that has passed, if any."""
        t = self.timeout()
        if t is None or t > 0:
            return None
        if self.room is None:
            return _Closed(1008, f"no join within {self.s.join_timeout_s:g} s")
        return _Closed(1000, f"nobody joined room {self.room} within {self.s.wait_timeout_s:g} s")


def create_app(settings: Settings | None = None, demo: bool = False) -> FastAPI:
    """Build the application with its own room hub (``demo``: also the local browser demo)."""
    s = settings or Settings()
    hub: Hub = RedisHub(s.redis_url, peer_ttl=s.redis_peer_ttl_s) if s.redis_url else LocalHub()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.close()
            if demo:
                from server.demo import close_demo_sessions

                await close_demo_sessions(app)

    app = FastAPI(title="CSSS signaling", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    stats = {"messages_relayed": 0, "bytes_relayed": 0, "connections": 0, "refused": 0, "closed_by_server": 0}
    app.state.stats = stats  # what passed through: signaling only, never audio

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness, version and load."""
        return {"status": "ok", "version": __version__, "ice_servers": len(s.ice_servers),
                "rooms": hub.local_rooms(), "shared_rooms": bool(s.redis_url), **stats}

    @app.get("/listen", response_class=HTMLResponse)
    def listen_page() -> str:
        """The listener page: a browser joins a room and hears the callers' pseudo-voices (no build step)."""
        return (STATIC / "listen.html").read_text(encoding="utf-8")

    @app.websocket("/ws")
    async def signaling(ws: WebSocket) -> None:
        """One party's signaling connection."""
        await ws.accept()
        if stats["connections"] >= s.max_connections:
            await ws.send_text(Error(code="busy", message="server at its connection limit").model_dump_json())
            await ws.close(1013, "try again later")
            return
        stats["connections"] += 1
        c = Connection(ws, s)
        try:
            await _serve(c, hub, s, stats)
        except _Closed as why:
            stats["closed_by_server"] += 1
            with contextlib.suppress(Exception):
                await c.deliver(Error(code="closing", message=why.reason).model_dump_json())
                await ws.close(why.code, why.reason[:120])
        except WebSocketDisconnect:
            pass
        finally:
            stats["connections"] -= 1
            if c.room is not None:
                await hub.leave(c.room, c)
                log.info("leave room=%s", c.room)

    if demo:
        from server.demo import add_demo_routes

        add_demo_routes(app)
    return app


async def _serve(c: Connection, hub: Hub, s: Settings, stats: dict[str, int]) -> None:
    """The receive loop of one connection (raises _Closed or WebSocketDisconnect to end it)."""
    receiving: asyncio.Future[Any] | None = None
    try:
        while True:
            if receiving is None:
                receiving = asyncio.ensure_future(c.ws.receive())
            c.changed.clear()
            woken: asyncio.Future[Any] = asyncio.ensure_future(c.changed.wait())
            done, _ = await asyncio.wait({receiving, woken}, timeout=c.timeout(),
                                         return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if receiving not in done:
                why = c.expired()
                if why is not None:
                    raise why
                continue
            frame, receiving = receiving.result(), None
            await _handle(c, hub, s, stats, frame)
    finally:
        if receiving is not None:
            receiving.cancel()


async def _handle(c: Connection, hub: Hub, s: Settings, stats: dict[str, int], frame: Any) -> None:
    """One received WebSocket frame: answered with an error, or acted on."""
    if frame["type"] == "websocket.disconnect":
        code = frame.get("code", 1000)
        raise WebSocketDisconnect(code if isinstance(code, int) else 1000)
    text = frame.get("text")
    if not isinstance(text, str):
        await c.error("binary", "only JSON text messages are accepted")
        return
    if not c.take_token():
        stats["refused"] += 1
        await c.error("rate-limited", f"at most {s.rate_per_s:g} messages per second")
        return
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        await c.error("too-large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
        return
    try:
        msg = CLIENT_MESSAGE.validate_python(json.loads(text))
    except (json.JSONDecodeError, RecursionError):
        await c.error("bad-json", "not a JSON object")
        return
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        await c.error("bad-message", f"{where}: {first.get('msg', 'invalid')}"[:300])
        return
    if isinstance(msg, Join):
        if c.room is not None:
            await c.error("already-joined", f"already in room {c.room}")
            return
        c.role = msg.role
        try:
            others = await hub.join(msg.room, c)
        except RoomFull:
            what = "two parties" if c.role == PARTY else "its listeners"
            await c.error("room-full", f"room {msg.room} already has {what}")
            return
        c.room = msg.room
        parties = [i for i, r in others if r == PARTY]
        n = len(parties) + (1 if c.role == PARTY else 0)
        c.alone_since = time.monotonic() if (c.role == PARTY and n == 1) else None
        await c.deliver(Joined(room=c.room, peers=n, ice_servers=s.ice_servers, id=c.id, role=c.role,
                               parties=parties, listeners=[i for i, r in others if r == LISTENER]).model_dump_json())
        log.info("join room=%s role=%s parties=%d", c.room, c.role, n)
        return
    if c.room is None:
        await c.error("not-joined", "join a room first")
        return
    if isinstance(msg, KeyExchange) and msg.to is not None:
        await c.error("bad-message", "key messages go to the other party only (no 'to')")
        return
    if c.role == LISTENER and (msg.to is None or isinstance(msg, KeyExchange)):
        await c.error("listener", "a listener talks only to one party (with 'to') and takes no part in keys")
        return
    # relay as validated (re-serialized: only known fields travel, plus who sent it); never logged
    fields = msg.model_dump(exclude_none=True)
    to = fields.pop("to", None)
    fields["from"] = c.id
    out = json.dumps(fields)
    sent = await hub.relay(c.room, c, out, to)
    if sent == 0:
        if to is not None:
            await c.error("no-such-peer", "nobody with that id is in the room")
        else:
            await c.error("no-peer", "nobody else is in the room yet")
        return
    stats["messages_relayed"] += sent
    stats["bytes_relayed"] += len(out) * sent


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``csss-server``."""
    import uvicorn

    s = Settings()
    p = argparse.ArgumentParser(prog="csss-server", description="CSSS signaling server")
    p.add_argument("--host", default=s.host)
    p.add_argument("--port", type=int, default=s.port)
    p.add_argument("--redis", default=s.redis_url, metavar="URL",
                   help="share rooms with other instances through this Redis (redis://host:6379/0)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    s = s.model_copy(update={"host": a.host, "port": a.port, "redis_url": a.redis})
    uvicorn.run(create_app(s), host=a.host, port=a.port, log_level="info", ws_max_size=WS_MAX_FRAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
