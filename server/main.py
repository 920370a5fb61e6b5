"""The signaling server application (FastAPI on uvicorn).

``/health`` for liveness; ``/ws`` a WebSocket per party: the first message joins a room (two
parties at most), then offer/answer/candidate/key/bye are relayed to the other party. Malformed,
oversized, unknown or out-of-order messages get an ``error`` message and the connection stays
usable; a party that vanishes frees its slot and the other is told. It never touches audio or keys.
"""

from __future__ import annotations

import argparse
import json
import logging

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from csss_core import __version__
from server.messages import (
    CLIENT_MESSAGE,
    MAX_MESSAGE_BYTES,
    Error,
    Join,
    Joined,
    PeerJoined,
    PeerLeft,
)
from server.rooms import RoomFull, RoomRegistry
from server.settings import Settings

log = logging.getLogger("csss.server")


def create_app(settings: Settings | None = None, demo: bool = False) -> FastAPI:
    """Build the application with its own room registry (``demo``: also the local browser demo)."""
    s = settings or Settings()
    app = FastAPI(title="CSSS signaling", version=__version__)
    registry = RoomRegistry()
    app.state.registry = registry
    stats = {"messages_relayed": 0, "bytes_relayed": 0}  # what passed through: signaling only, never audio
    app.state.stats = stats

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness, version and load."""
        return {"status": "ok", "version": __version__, "ice_servers": len(s.ice_servers),
                "rooms": len(registry.rooms), **stats}

    @app.websocket("/ws")
    async def signaling(ws: WebSocket) -> None:
        """One party's signaling connection."""
        await ws.accept()
        room: str | None = None

        async def error(code: str, message: str) -> None:
            await ws.send_text(Error(code=code, message=message).model_dump_json())

        try:
            while True:
                text = await ws.receive_text()
                if len(text.encode()) > MAX_MESSAGE_BYTES:
                    await error("too-large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
                    continue
                try:
                    msg = CLIENT_MESSAGE.validate_python(json.loads(text))
                except json.JSONDecodeError:
                    await error("bad-json", "not a JSON object")
                    continue
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first.get("loc", ()))
                    await error("bad-message", f"{where}: {first.get('msg', 'invalid')}")
                    continue
                if isinstance(msg, Join):
                    if room is not None:
                        await error("already-joined", f"already in room {room}")
                        continue
                    try:
                        others = await registry.join(msg.room, ws)
                    except RoomFull:
                        await error("room-full", f"room {msg.room} already has two parties")
                        continue
                    room = msg.room
                    await ws.send_text(Joined(room=room, peers=len(others) + 1, ice_servers=s.ice_servers)
                                       .model_dump_json())
                    for o in others:
                        await o.send_text(PeerJoined().model_dump_json())
                    log.info("join room=%s peers=%d", room, len(others) + 1)
                    continue
                if room is None:
                    await error("not-joined", "join a room first")
                    continue
                # relay as validated (re-serialized: only known fields travel); never logged
                out = msg.model_dump_json(exclude_none=True)
                for o in await registry.others(room, ws):
                    await o.send_text(out)
                    stats["messages_relayed"] += 1
                    stats["bytes_relayed"] += len(out)
        except WebSocketDisconnect:
            pass
        finally:
            if room is not None:
                for o in await registry.leave(room, ws):
                    try:
                        await o.send_text(PeerLeft().model_dump_json())
                    except (RuntimeError, WebSocketDisconnect):
                        pass
                log.info("leave room=%s", room)

    if demo:
        from server.demo import add_demo_routes

        add_demo_routes(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``csss-server``."""
    import uvicorn

    s = Settings()
    p = argparse.ArgumentParser(prog="csss-server", description="CSSS signaling server")
    p.add_argument("--host", default=s.host)
    p.add_argument("--port", type=int, default=s.port)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(s), host=a.host, port=a.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
