"""The browser demo (``csss demo``): a local engine peer that a web page calls over WebRTC.

The visitor's microphone reaches this process (which must run on the visitor's own machine: it hears
the raw voice); here the sender engine makes the pseudo-voice with the sealed identity and the
receiver engine extracts it and reconstructs, as the two ends of a call would. Two tracks go back to
the page: what the network hears (the pseudo-voice) and what the other party hears (the
reconstruction). ``/demo/stats/{id}`` gives the live figures: identity pending/verified, lock time,
engine delay, and the GE2E cosine of each stream to the visitor's own voice.

This mode is separate from the signaling server's contract (which never touches audio): the routes
exist only in an app made with ``create_app(..., demo=True)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from client.media import frame_to_mono, mono_to_frame

log = logging.getLogger("csss.demo")
RATE = 48_000
FRAME = 960
STATIC = Path(__file__).resolve().parent / "static"
MAX_SESSIONS = 4
WINDOW_S = 8.0  # seconds of each stream kept for the ASV figures


class OfferIn(BaseModel):
    """The page's SDP offer."""

    sdp: str = Field(max_length=64 * 1024)
    type: str = Field(pattern="^offer$")


class QueueTrack(MediaStreamTrack):  # type: ignore[misc]
    """Outgoing audio fed from a queue of 20 ms float chunks (silence when it runs dry)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=25)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> Any:
        """The next 20 ms frame, paced by the clock."""
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        try:
            y = await asyncio.wait_for(self.queue.get(), timeout=max(0.0, due - time.monotonic()) + 0.06)
        except TimeoutError:
            y = np.zeros(FRAME, np.float32)
        frame = mono_to_frame(y, self._pts)
        self._pts += len(y)
        return frame

    def put(self, y: np.ndarray) -> None:
        """Queue a chunk; the oldest is dropped when full (latency stays bounded)."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(y)


class _Recent:
    """The last ``seconds`` of a 48 kHz stream as the 20 ms chunks it came in (no copying per chunk)."""

    def __init__(self, seconds: float) -> None:
        self.chunks: collections.deque[np.ndarray] = collections.deque(maxlen=int(seconds * RATE / FRAME))

    def push(self, x: np.ndarray) -> None:
        self.chunks.append(x)

    @staticmethod
    def of(chunks: list[np.ndarray]) -> np.ndarray:
        """Kept chunks as one 16 kHz signal (resampled once, when the figures are computed)."""
        from csss_core.audio import resample

        if not chunks:
            return np.zeros(0, np.float32)
        return resample(np.concatenate(chunks), RATE, 16000)


class DemoSession:
    """One visitor: an aiortc peer with the sender and receiver engines between its tracks."""

    def __init__(self, sid: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        from csss_core.anonymizer import Anonymizer
        from csss_core.engine import ReceiverEngine, SenderEngine
        from csss_core.payload import new_key

        self.sid = sid
        self.created = time.monotonic()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        key = new_key()
        anon = Anonymizer(asv_check=False)
        self.sender = SenderEngine(anon, key, secrets.randbelow(2**32), asv_check=True)
        self.receiver = ReceiverEngine(Anonymizer(asv_check=False, codebook=anon.cb, gan=anon.gan), key)
        self.pseudo = QueueTrack()
        self.recon = QueueTrack()
        self.pc.addTrack(self.pseudo)
        self.pc.addTrack(self.recon)
        self._ex = ThreadPoolExecutor(1, thread_name_prefix=f"demo-{sid}")
        self._recent = {"mic": _Recent(WINDOW_S), "pseudo": _Recent(WINDOW_S), "recon": _Recent(WINDOW_S)}
        self.asv: dict[str, float | None] = {"pseudo": None, "recon": None}
        self.connected_at: float | None = None
        self.locked_at: float | None = None
        self.frames = 0
        self._task: asyncio.Task[None] | None = None
        self._asv_task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and self._task is None:
                self._task = asyncio.create_task(self._pump(track))

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
            elif self.pc.connectionState in ("failed", "closed"):
                await self.close()

    def _process(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = self.sender.process(pcm)
        z = self.receiver.process(y)
        for name, s in (("mic", pcm), ("pseudo", y), ("recon", z)):
            self._recent[name].push(s)  # read by _asv_figures, which runs on the same worker thread
        return y, z

    async def _pump(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        loop = asyncio.get_running_loop()
        self._asv_task = asyncio.create_task(self._asv_loop())
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame_to_mono(frame)
            y, z = await loop.run_in_executor(self._ex, self._process, pcm)
            self.pseudo.put(y)
            self.recon.put(z)
            self.frames += 1
            if self.receiver.status.locked and self.locked_at is None:
                self.locked_at = time.monotonic()

    def _asv_figures(self) -> None:
        from csss_core.evaluation.attackers import GE2EAttacker

        mic, ps, rc = (_Recent.of(list(self._recent[k].chunks)) for k in ("mic", "pseudo", "recon"))
        if len(mic) < 32000 or np.sqrt(np.mean(mic**2)) < 1e-3:
            return
        g = _ge2e(GE2EAttacker)
        e = g.embed(mic)
        self.asv["pseudo"] = round(float(e @ g.embed(ps)), 3)
        if self.receiver.status.locked and self.locked_at is not None and time.monotonic() - self.locked_at > 2.0:
            self.asv["recon"] = round(float(e @ g.embed(rc)), 3)

    async def _asv_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(2.0)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._ex, self._asv_figures)

    def stats(self) -> dict[str, Any]:
        """The page's live figures."""
        st = self.receiver.status
        return {
            "connected": self.connected_at is not None,
            "identity": "verified" if st.locked and st.authenticated else "pending",
            "seconds_to_lock": None if self.locked_at is None or self.connected_at is None
            else round(self.locked_at - self.connected_at, 1),
            "engine_delay_ms": round(1000 * (self.sender.latency_s + self.receiver.latency_s), 1),
            "compute_ms": round(float(np.median(self.sender.status.compute_ms + st.compute_ms)), 2)
            if st.compute_ms else None,
            "asv_pseudo": self.asv["pseudo"],
            "asv_recon": self.asv["recon"],
            "seconds": round(self.frames * FRAME / RATE, 1),
            "reason": self.receiver.explain(),
        }

    async def close(self) -> None:
        """Hang up and free the engines."""
        for t in (self._task, self._asv_task):
            if t is not None:
                t.cancel()
        await self.pc.close()
        self.sender.close()
        self._ex.shutdown(wait=False)


_GE2E: Any = None


def _ge2e(factory: Any) -> Any:
    global _GE2E
    if _GE2E is None:
        _GE2E = factory()
    return _GE2E


async def close_demo_sessions(app: FastAPI) -> None:
    """Close every demo session (the server is shutting down)."""
    sessions: dict[str, DemoSession] = getattr(app.state, "demo_sessions", {})
    for s in list(sessions.values()):
        with contextlib.suppress(Exception):
            await s.close()
    sessions.clear()


def add_demo_routes(app: FastAPI) -> None:
    """The page, the offer endpoint and the live figures."""
    sessions: dict[str, DemoSession] = {}
    app.state.demo_sessions = sessions

    @app.get("/demo", response_class=HTMLResponse)
    def page() -> str:
        """The demo page (no build step)."""
        return (STATIC / "demo.html").read_text(encoding="utf-8")

    @app.post("/demo/offer")
    async def offer(o: OfferIn) -> dict[str, str]:
        """Answer the page's offer with a fresh engine peer."""
        from aiortc import RTCSessionDescription

        for sid, s in list(sessions.items()):
            if s.pc.connectionState in ("closed", "failed"):
                sessions.pop(sid, None)
        if len(sessions) >= MAX_SESSIONS:
            raise HTTPException(503, f"at most {MAX_SESSIONS} demo sessions at once")
        sid = secrets.token_hex(8)
        s = DemoSession(sid)
        sessions[sid] = s
        try:
            await s.pc.setRemoteDescription(RTCSessionDescription(sdp=o.sdp, type="offer"))
            await s.pc.setLocalDescription(await s.pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 (a malformed offer must not take the server down)
            sessions.pop(sid, None)
            await s.close()
            raise HTTPException(400, f"bad offer: {exc}") from exc
        log.info("demo session %s started", sid)
        return {"id": sid, "sdp": s.pc.localDescription.sdp, "type": "answer"}

    @app.get("/demo/stats/{sid}")
    def stats(sid: str) -> dict[str, Any]:
        """Live figures of one session."""
        s = sessions.get(sid)
        if s is None:
            raise HTTPException(404, "no such demo session")
        return s.stats()

    @app.post("/demo/hangup/{sid}")
    async def hangup(sid: str) -> dict[str, bool]:
        """End one session."""
        s = sessions.pop(sid, None)
        if s is not None:
            await s.close()
        return {"ok": s is not None}
