"""``csss call``: a two-party call through the signaling server, media over aiortc.

Sender track: source (microphone or file) -> :class:`~csss_core.engine.SenderEngine` (pseudo-voice
with the sealed identity) -> Opus. Receiver: Opus -> :class:`~csss_core.engine.ReceiverEngine`
(extract, reconstruct) -> sink (speaker or file). Engine work runs on one worker thread per
direction, never on the event loop.

Keys: an X25519 agreement through the signaling channel (:mod:`csss_core.keys`) gives one key per
direction and a short authentication string both users compare; ``--key-file`` mixes a pre-shared
key into that agreement (fresh keys per call; a relay without the key can open nothing). The first
party in the room is the initiator (it commits to its key and makes the offer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from client.media import (
    FRAME,
    RATE,
    FileSink,
    FileSource,
    GapFiller,
    MicSource,
    SilenceSource,
    SpeakerSink,
    frame_to_mono,
    mono_to_frame,
)
from csss_core.keys import CallKeys, KeyAgreement, KeyExchangeError, read_key_file

log = logging.getLogger("csss.call")


class CallError(RuntimeError):
    """The call could not be set up (server unreachable, room full, ...)."""


@dataclass
class CallOptions:
    """Everything ``csss call`` takes."""

    server: str
    room: str
    input_file: str | None = None
    output_file: str | None = None
    input_device: str | int | None = None
    output_device: str | int | None = None
    silent: bool = False  # send silence instead of a microphone (a listener)
    loop_input: bool = False
    key_file: str | None = None
    seed: int | None = None
    enroll: str | None = None
    engine: bool = True
    duration: float | None = None  # seconds of connected call, then hang up
    ice_hosts: list[str] | None = None  # restrict ICE host candidates (tests: 127.0.0.1)
    status: bool = True
    timing_file: str | None = None  # JSON with per-chunk times, for the latency benchmark
    connect_timeout: float = 20.0
    jitter_frames: int = 2  # receive jitter buffer, 20 ms frames (aiortc's own default is 4)
    allow_listeners: bool = False  # let browser listeners in the room hear what the network hears


@dataclass
class CallReport:
    """The summary ``csss call`` prints as JSON at the end."""

    connected: bool = False
    ended_by: str = ""
    initiator: bool = False
    sas: str = ""
    key_mode: str = ""
    seconds_connected: float = 0.0
    identity_locked: bool = False
    identity_authenticated: bool = False
    identity_reason: str = ""  # why the identity did (not) lock
    seconds_audio_to_lock: float | None = None  # received audio until the payload opened
    seconds_call_start_to_lock: float | None = None  # wall clock from "connected" to lock
    sender_identity_frozen_at_s: float | None = None
    sender_speech_seconds: float | None = None  # speech the sender's identity estimate has seen
    sender_asv_distance: float | None = None  # GE2E cosine distance of the pseudo-voice from the real one
    frames_sent: int = 0
    frames_received: int = 0
    samples_concealed: int = 0  # lost packets filled in by the receiver (48 kHz samples)
    frames_late: int = 0  # frames that arrived after their time had been filled in
    sender_compute_ms_median: float | None = None
    receiver_compute_ms_median: float | None = None
    id: str = ""  # this party's id in the room
    listeners_served: int = 0  # listeners that were sent this party's pseudo-voice
    errors: list[str] = field(default_factory=list)


def restrict_ice_hosts(addresses: list[str]) -> None:
    """Gather ICE host candidates only on ``addresses`` (aioice skips loopback by default)."""
    import aioice.ice

    def hosts(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return list(addresses)

    aioice.ice.get_host_addresses = hosts


def set_audio_jitter_frames(n: int) -> None:
    """How many later 20 ms packets aiortc's audio jitter buffer waits for before playing one
    (aiortc's own setting is 4: 80 ms; 1 suits loopback and quiet LANs), and loss handling.

    aiortc's buffer (1.16) stops at a missing packet until its 16 slots overflow, then drops the good
    packets queued before the hole and keeps a ~15-frame backlog: at 10 % network loss the receiver
    lost ~30 % of frames and mouth-to-ear grew from ~150 to ~420 ms. Here a missing packet is waited
    for only while no more than ``n`` later packets are queued; then the hole is skipped and the
    oldest packet present is played (the receiver's :class:`GapFiller` conceals the skipped time).
    """
    import aiortc.rtcrtpreceiver as receiver
    from aiortc.jitterbuffer import JitterBuffer, JitterFrame

    if not 1 <= n <= 15:
        raise ValueError("the jitter buffer holds 1 to 15 frames")

    class AudioJitterBuffer(JitterBuffer):  # type: ignore[misc]
        def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
            super().__init__(capacity, prefetch if is_video else n, is_video)

        def add(self, packet: Any) -> tuple[bool, Any]:
            pli, frame = super().add(packet)
            if frame is not None or self._is_video or self._origin is None:
                return pli, frame
            if sum(p is not None for p in self._packets) <= self._prefetch:
                return pli, None  # still waiting for the missing packet (it may only be late)
            while self._packets[self._origin % self._capacity] is None:
                self.remove(1)  # give up on the hole
            first: Any = self._packets[self._origin % self._capacity]
            self.remove(1)
            return pli, JitterFrame(data=first._data, timestamp=first.timestamp)

    receiver.JitterBuffer = AudioJitterBuffer  # type: ignore[misc]


def _ws_url(server: str) -> str:
    s = server.rstrip("/")
    if s.startswith("http://"):
        s = "ws://" + s[len("http://") :]
    elif s.startswith("https://"):
        s = "wss://" + s[len("https://") :]
    elif not s.startswith(("ws://", "wss://")):
        s = "ws://" + s
    return s if s.endswith("/ws") else s + "/ws"


def _ice_servers(urls: list[str]) -> list[Any]:
    """RTCIceServers from URLs; ``turn:USER:PASSWORD@HOST:PORT`` carries TURN credentials."""
    from aiortc import RTCIceServer

    out = []
    for u in urls:
        scheme, sep, rest = u.partition(":")
        if sep and "@" in rest and scheme in ("turn", "turns"):
            cred, _, host = rest.rpartition("@")
            user, _, password = cred.partition(":")
            out.append(RTCIceServer(urls=f"{scheme}:{host}", username=user, credential=password))
        else:
            out.append(RTCIceServer(urls=u))
    return out


class EngineTrack(MediaStreamTrack):  # type: ignore[misc]
    """The outgoing audio track: source -> engine (worker thread) -> 20 ms s16 frames."""

    kind = "audio"

    def __init__(self, source: Any, process: Any, executor: ThreadPoolExecutor) -> None:
        super().__init__()
        self.source = source
        self.process = process
        self.executor = executor
        self.pts = 0
        self.frames = 0

    async def recv(self) -> Any:
        """The next 20 ms frame, produced by the engine off the event loop."""
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self.source.read()
        y = await asyncio.get_running_loop().run_in_executor(self.executor, self.process, pcm)
        frame = mono_to_frame(y, self.pts)
        self.pts += len(y)
        self.frames += 1
        return frame


class Call:
    """One party of a call."""

    def __init__(self, opts: CallOptions) -> None:
        self.o = opts
        self.report = CallReport()
        self.keys: CallKeys | None = None
        self._agreement: KeyAgreement | None = None
        self._connected_at: float | None = None
        self._lock_wall: float | None = None
        self._done = asyncio.Event()
        self._send_ex = ThreadPoolExecutor(1, thread_name_prefix="csss-send")
        self._recv_ex = ThreadPoolExecutor(1, thread_name_prefix="csss-recv")
        self._gaps = GapFiller()
        self._sender: Any = None
        self._receiver: Any = None
        self._sink: Any = None
        self._source: Any = None
        self._track: Any = None
        self._pc: Any = None
        self._ws: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._relay: Any = None  # MediaRelay: the outgoing track to the other party and to listeners
        self._listeners: dict[str, Any] = {}  # listener id -> its RTCPeerConnection (None until it offers)
        self._ice: list[Any] = []
        self._peer_id: str | None = None  # the other party's id in the room

    # ---------------------------------------------------------------- engine
    def _make_engines(self) -> None:
        import torch

        from csss_core.engine import PassThroughEngine

        torch.set_num_threads(1)  # 20 ms blocks: threads only add overhead and steal the peer's core
        if not self.o.engine:
            self._sender = PassThroughEngine()
            self._receiver = PassThroughEngine()
            return
        import secrets

        from csss_core.anonymizer import Anonymizer
        from csss_core.audio import read_audio
        from csss_core.engine import ReceiverEngine, SenderEngine

        enroll = read_audio(self.o.enroll)[0] if self.o.enroll else None
        seed = self.o.seed if self.o.seed is not None else secrets.randbelow(2**32)
        self._sender = SenderEngine(Anonymizer(asv_check=enroll is not None), None, seed, enroll=enroll, asv_check=True)
        self._receiver = ReceiverEngine(Anonymizer(asv_check=False), None)

    def _set_keys(self, keys: CallKeys) -> None:
        self.keys = keys
        self.report.sas = keys.sas
        if self.o.engine:
            self._sender.set_key(keys.send)
            self._receiver.set_key(keys.receive)

    def _send_process(self, pcm: np.ndarray) -> np.ndarray:
        """Sender engine; if it fails, silence goes out (never the unprotected voice) and the call ends."""
        try:
            y: np.ndarray = self._sender.process(pcm)
        except Exception as exc:  # noqa: BLE001 (any engine failure must end the call cleanly)
            self._engine_failed(f"sender engine failed: {type(exc).__name__}: {exc}")
            return np.zeros_like(pcm)
        return y

    def _recv_process(self, pcm: np.ndarray, erased: bool = False) -> np.ndarray:
        try:
            y: np.ndarray = self._receiver.process(pcm, erased)
        except Exception as exc:  # noqa: BLE001
            self._engine_failed(f"receiver engine failed: {type(exc).__name__}: {exc}")
            return np.zeros_like(pcm)
        return y

    def _engine_failed(self, why: str) -> None:
        if why not in self.report.errors:
            self.report.errors.append(why)
            log.error(why)
        self._loop.call_soon_threadsafe(self._finish, "engine-failed")

    # ---------------------------------------------------------------- signaling
    async def _send(self, msg: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(msg))

    async def _start_key_exchange(self) -> None:
        assert self._agreement is not None
        first = self._agreement.start()
        if first is not None:
            await self._send({"type": "key", **first})

    async def _make_offer(self) -> None:
        offer = await self._pc.createOffer()
        await self._pc.setLocalDescription(offer)
        await self._send({"type": "offer", "sdp": self._pc.localDescription.sdp})

    async def _on_message(self, msg: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        kind = msg.get("type")
        sender = msg.get("from")
        if sender is not None and sender != self._peer_id:
            # anyone but the other party is a listener (before the other party arrives, everyone else is)
            self._listeners.setdefault(str(sender), None)
        if kind in ("listener-joined", "listener-left") or sender in self._listeners:
            await self._on_listener_message(kind, msg)
            return
        if kind == "peer-joined":
            if msg.get("id"):
                self._peer_id = str(msg["id"])
            if self.report.initiator:
                await self._start_key_exchange()
                await self._make_offer()
        elif kind == "offer":
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            answer = await self._pc.createAnswer()
            await self._pc.setLocalDescription(answer)
            await self._send({"type": "answer", "sdp": self._pc.localDescription.sdp})
        elif kind == "answer":
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
        elif kind == "candidate":
            from aiortc.sdp import candidate_from_sdp

            text = str(msg.get("candidate") or "")
            if text:
                cand = candidate_from_sdp(text.removeprefix("candidate:"))
                cand.sdpMid = msg.get("sdpMid")
                cand.sdpMLineIndex = msg.get("sdpMLineIndex")
                await self._pc.addIceCandidate(cand)
        elif kind == "key":
            if self._agreement is None:
                return
            try:
                reply = self._agreement.receive(msg)
            except KeyExchangeError as exc:
                self.report.errors.append(f"key exchange failed: {exc}")
                self._finish("key-exchange-failed")
                return
            if reply is not None:
                await self._send({"type": "key", **reply})
            if self._agreement.keys is not None:
                self._set_keys(self._agreement.keys)
        elif kind in ("peer-left", "bye") and msg.get("role", "party") == "party":
            self._finish("peer-left")
        elif kind == "error":
            self.report.errors.append(f"server: {msg.get('code')}: {msg.get('message')}")

    async def _on_listener_message(self, kind: Any, msg: dict[str, Any]) -> None:
        """A listener came, went, or offers to hear this party's outgoing (pseudo-voice) track."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        lid = str(msg.get("id") if kind in ("listener-joined", "listener-left") else msg.get("from"))
        if kind == "listener-joined":
            self._listeners.setdefault(lid, None)
        elif kind in ("listener-left", "bye"):
            pc = self._listeners.pop(lid, None)
            if pc is not None:
                await pc.close()
        elif kind == "offer":
            if not self.o.allow_listeners or self._relay is None or self._listeners.get(lid) is not None:
                await self._send({"type": "bye", "to": lid})  # declined: the page says so
                return
            pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
            self._listeners[lid] = pc
            pc.addTrack(self._relay.subscribe(self._track))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send({"type": "answer", "sdp": pc.localDescription.sdp, "to": lid})
            self.report.listeners_served += 1
            log.info("a listener hears this party's pseudo-voice")

    async def _signaling_loop(self) -> None:
        import websockets

        try:
            async for text in self._ws:
                try:
                    msg = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if isinstance(msg, dict):
                    await self._on_message(msg)
        except websockets.ConnectionClosed:
            pass
        if not self._done.is_set():
            self._finish("server-closed")

    # ---------------------------------------------------------------- media
    async def _play(self, track: Any) -> None:
        loop = asyncio.get_running_loop()
        while not self._done.is_set():
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.report.frames_received += 1
            for pcm, filled in self._gaps.push_marked(frame.pts, frame_to_mono(frame)):
                y = await loop.run_in_executor(self._recv_ex, self._recv_process, pcm, filled)
                self._sink.write(y)
            self.report.samples_concealed = self._gaps.concealed
            self.report.frames_late = self._gaps.late
            st = getattr(self._receiver, "status", None)
            if st is not None and st.locked and self._lock_wall is None:
                self._lock_wall = time.monotonic()

    def _finish(self, why: str) -> None:
        if not self._done.is_set():
            self.report.ended_by = why
            self._done.set()

    # ---------------------------------------------------------------- status
    def _status_line(self) -> str:
        r = self._receiver.status if self._receiver is not None else None
        s = getattr(self._sender, "status", None)
        conn = "connected" if self._connected_at else "connecting"
        if self.keys is None:
            sas = "keys pending"
        else:
            sas = f"SAS {self.keys.sas}"
        if r is not None and getattr(r, "locked", False):
            ident = "identity verified" if r.authenticated else "identity locked (NOT authenticated)"
            if self._lock_wall and self._connected_at:
                ident += f" after {self._lock_wall - self._connected_at:.1f} s"
        elif not self.o.engine:
            ident = "no engine"
        else:
            ident = "identity pending"
        lat = ""
        if self.o.engine and self._sender is not None:
            lat = f" | engine delay {1000 * (self._sender.latency_s + self._receiver.latency_s):.0f} ms"
        lv = ""
        if s is not None and r is not None:
            lv = (f" | mic {s.input_db:5.0f} dB out {s.output_db:5.0f} dB"
                  f" | in {r.input_db:5.0f} dB spk {r.output_db:5.0f} dB")
        ears = sum(1 for pc in self._listeners.values() if pc is not None)
        lis = f" | {ears} listening" if ears else ""
        return f"[csss] {conn} | {sas} | {ident}{lat}{lis}{lv}"

    async def _status_loop(self) -> None:
        tty = sys.stderr.isatty()
        last = ""
        while not self._done.is_set():
            line = self._status_line()
            if tty:
                print("\r" + line.ljust(len(last)), end="", file=sys.stderr, flush=True)
            elif line.split(" | mic")[0] != last.split(" | mic")[0]:
                print(line, file=sys.stderr, flush=True)
            last = line
            await asyncio.sleep(0.5)
        if tty:
            print(file=sys.stderr)

    # ---------------------------------------------------------------- run
    async def run(self) -> CallReport:
        """Join, connect, talk until the duration, the peer leaving, or Ctrl-C."""
        import websockets
        from aiortc import RTCConfiguration, RTCPeerConnection

        if self.o.ice_hosts:
            restrict_ice_hosts(self.o.ice_hosts)
        set_audio_jitter_frames(self.o.jitter_frames)
        psk = read_key_file(self.o.key_file) if self.o.key_file else None
        self.report.key_mode = "x25519+psk+sas" if psk is not None else "x25519+sas"
        self._loop = asyncio.get_running_loop()
        self._make_engines()
        url = _ws_url(self.o.server)
        try:
            self._ws = await asyncio.wait_for(websockets.connect(url, max_size=1 << 17), self.o.connect_timeout)
        except (TimeoutError, OSError, websockets.InvalidURI, websockets.InvalidHandshake) as exc:
            raise CallError(f"cannot reach the signaling server at {url}: {exc}") from exc
        try:
            await self._send({"type": "join", "room": self.o.room})
            joined = json.loads(await asyncio.wait_for(self._ws.recv(), self.o.connect_timeout))
            if joined.get("type") == "error":
                raise CallError(f"server refused: {joined.get('message')}")
            if joined.get("type") != "joined":
                raise CallError(f"unexpected first message from the server: {joined.get('type')}")
            self.report.initiator = int(joined["peers"]) == 1
            self.report.id = str(joined.get("id", ""))
            parties = joined.get("parties") or []
            self._peer_id = str(parties[0]) if parties else None
            for lid in joined.get("listeners") or []:
                self._listeners.setdefault(str(lid), None)
            self._ice = _ice_servers(list(joined.get("ice_servers", [])))
            self._agreement = KeyAgreement(self.report.initiator, psk=psk)
            self._pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
            await self._setup_media()
            self._tasks.append(asyncio.create_task(self._signaling_loop()))
            if self.o.status:
                self._tasks.append(asyncio.create_task(self._status_loop()))
            if not self.report.initiator:
                await self._start_key_exchange()  # the responder waits for the commitment; no-op
            await self._wait()
        finally:
            await self._close()
        return self.report

    async def _setup_media(self) -> None:
        if self.o.input_file:
            self._source = FileSource(self.o.input_file, loop_file=self.o.loop_input)
        elif self.o.silent:
            self._source = SilenceSource()
        else:
            self._source = MicSource(self.o.input_device)
        self._sink = FileSink(self.o.output_file) if self.o.output_file else SpeakerSink(self.o.output_device)
        self._track = EngineTrack(self._source, self._send_process, self._send_ex)
        if self.o.allow_listeners:
            from aiortc.contrib.media import MediaRelay

            self._relay = MediaRelay()
            self._pc.addTrack(self._relay.subscribe(self._track))
        else:
            self._pc.addTrack(self._track)

        @self._pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                self._tasks.append(asyncio.create_task(self._play(track)))

        @self._pc.on("connectionstatechange")
        async def on_state() -> None:
            state = self._pc.connectionState
            if state == "connected" and self._connected_at is None:
                self._connected_at = time.monotonic()
                self.report.connected = True
            elif state == "failed":
                self._finish("connection-failed")
            elif state == "closed":
                # this party closes its connection only after the call has finished: a close before that is
                # aiortc shutting down because the peer closed its DTLS transport, i.e. the peer hung up (its
                # bye, relayed by the server, can arrive a moment later)
                self._finish("peer-left")

    async def _wait(self) -> None:
        t0 = time.monotonic()
        while not self._done.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if self._connected_at is None and now - t0 > self.o.connect_timeout + 10 and not self.report.initiator:
                self._finish("connect-timeout")
            up = now - self._connected_at if self._connected_at is not None else None
            if up is not None and self.o.duration is not None and up >= self.o.duration:
                self._finish("duration")

    async def _close(self) -> None:
        if self._connected_at is not None:
            self.report.seconds_connected = round(time.monotonic() - self._connected_at, 3)
        with contextlib.suppress(Exception):
            await self._send({"type": "bye"})
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self._pc is not None:
            await self._pc.close()
        for pc in self._listeners.values():
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._send_ex.shutdown(wait=True)
        self._recv_ex.shutdown(wait=True)
        for part in (self._source, self._sink):
            if part is not None:
                part.close()
        self._fill_report()

    def _fill_report(self) -> None:
        rep = self.report
        rep.frames_sent = getattr(self._track, "frames", 0) if self._track is not None else 0
        r = getattr(self._receiver, "status", None)
        s = getattr(self._sender, "status", None)
        if hasattr(self._receiver, "explain"):
            rep.identity_reason = self._receiver.explain()
        if r is not None and getattr(r, "locked", False):
            rep.identity_locked = True
            rep.identity_authenticated = bool(r.authenticated)
            rep.seconds_audio_to_lock = r.seconds_to_lock
        if self._lock_wall is not None and self._connected_at is not None:
            rep.seconds_call_start_to_lock = round(self._lock_wall - self._connected_at, 3)
        if s is not None and hasattr(s, "embedding_since_s"):
            rep.sender_identity_frozen_at_s = s.embedding_since_s
            rep.sender_speech_seconds = round(s.speech_seconds, 2)
        if self._sender is not None and hasattr(self._sender, "asv_distance"):
            d = self._sender.asv_distance
            rep.sender_asv_distance = None if d is None else round(float(d), 3)
            self._sender.close()
        if s is not None and getattr(s, "compute_ms", None):
            rep.sender_compute_ms_median = round(float(np.median(s.compute_ms)), 2)
        if r is not None and getattr(r, "compute_ms", None):
            rep.receiver_compute_ms_median = round(float(np.median(r.compute_ms)), 2)
        if self.o.timing_file:
            timing = {
                "source_start": getattr(self._source, "start", None),
                "sink_times": getattr(self._sink, "times", []),
                "frame": FRAME,
                "rate": RATE,
                "sender_latency_s": getattr(self._sender, "latency_s", 0.0),
                "receiver_latency_s": getattr(self._receiver, "latency_s", 0.0),
                "sender_compute_ms": list(getattr(s, "compute_ms", []) or []),
                "receiver_compute_ms": list(getattr(r, "compute_ms", []) or []),
                "report": asdict(rep),
            }
            Path(self.o.timing_file).write_text(json.dumps(timing))


def run_call(opts: CallOptions) -> CallReport:
    """Run a call to its end (blocking)."""
    return asyncio.run(Call(opts).run())
