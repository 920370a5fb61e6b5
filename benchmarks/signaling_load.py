"""Signaling load: N rooms, 2N WebSocket clients held open at once, against real csss-server instances.

Each room: party A joins, party B joins, A is told and sends an offer, B answers; the figure is
join-to-answer, from B's join to A holding the answer (what a call's set-up waits for on the
server). All rooms run at once; every connection stays open until all rooms are done, then all
close and the servers must report no room left. ``--instances 2`` starts two servers sharing rooms
through a Redis started here (A on the first, B on the second), as a scaled-out deployment would.

    .venv/bin/python -m benchmarks.signaling_load --rooms 200 [--instances 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def start_redis(stack: ExitStack) -> str:
    """A private redis-server on a free loopback port (no persistence); returns its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    port = free_port()
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    wait_until(ping, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def start_servers(stack: ExitStack, n: int, redis_url: str | None, env: dict[str, str] | None = None) -> list[int]:
    """``n`` csss-server processes on loopback; returns their ports."""
    ports = []
    for _ in range(n):
        port = free_port()
        args = [sys.executable, "-m", "server.main", "--host", "127.0.0.1", "--port", str(port)]
        if redis_url:
            args += ["--redis", redis_url]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})
        stack.callback(lambda p=proc: (p.terminate(), p.wait(10)))
        wait_until(lambda p=port: urllib.request.urlopen(f"http://127.0.0.1:{p}/health", timeout=1).status == 200,
                   f"csss-server on port {port}")
        ports.append(port)
    return ports


def health(port: int) -> dict[str, Any]:
    return dict(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()))


async def run_load(url_a: str, url_b: str, rooms: int, hold_s: float = 60.0) -> dict[str, Any]:
    """All rooms at once; returns join-to-answer times (s) and error descriptions."""
    import websockets

    times: list[float] = []
    errors: list[str] = []
    all_done = asyncio.Event()
    finished = 0
    sem = asyncio.Semaphore(64)  # connection attempts in flight (a real crowd does not connect in one instant)

    async def recv(ws: Any) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 20)))

    async def room(i: int) -> None:
        nonlocal finished
        name = f"load-{i}"
        try:
            async with sem:
                a = await websockets.connect(url_a)
                b = await websockets.connect(url_b)
            async with a, b:
                await a.send(json.dumps({"type": "join", "room": name}))
                if (m := await recv(a))["type"] != "joined":
                    raise RuntimeError(f"A: {m}")
                t0 = time.perf_counter()
                await b.send(json.dumps({"type": "join", "room": name}))
                if (m := await recv(b)).get("peers") != 2:
                    raise RuntimeError(f"B: {m}")
                if (m := await recv(a))["type"] != "peer-joined":
                    raise RuntimeError(f"A: {m}")
                await a.send(json.dumps({"type": "offer", "sdp": f"v=0 offer {i}"}))
                if (m := await recv(b)).get("sdp") != f"v=0 offer {i}" or m["type"] != "offer":
                    raise RuntimeError(f"B got {m}")
                await b.send(json.dumps({"type": "answer", "sdp": f"v=0 answer {i}"}))
                if (m := await recv(a)).get("sdp") != f"v=0 answer {i}" or m["type"] != "answer":
                    raise RuntimeError(f"A got {m}")
                times.append(time.perf_counter() - t0)
                finished += 1
                if finished == rooms:
                    all_done.set()
                await asyncio.wait_for(all_done.wait(), hold_s)  # hold every connection until all rooms are up
        except Exception as exc:  # noqa: BLE001 (counted and reported)
            errors.append(f"room {i}: {type(exc).__name__}: {exc}"[:200])
            finished += 1
            if finished == rooms:
                all_done.set()

    t = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(room(i) for i in range(rooms))), hold_s + 30)
    return {"times": times, "errors": errors, "wall_s": time.perf_counter() - t}


def measure(rooms: int, instances: int) -> dict[str, Any]:
    """Start servers (and Redis for two instances), run the load, check the servers are clean after."""
    with ExitStack() as stack:
        redis_url = start_redis(stack) if instances > 1 else None
        ports = start_servers(stack, instances, redis_url)
        url_a, url_b = (f"ws://127.0.0.1:{ports[0]}/ws", f"ws://127.0.0.1:{ports[-1]}/ws")
        out = asyncio.run(run_load(url_a, url_b, rooms))
        time.sleep(0.5)
        after = [health(p) for p in ports]
    t = np.array(out["times"]) * 1000
    return {"rooms": rooms, "clients": 2 * rooms, "instances": instances, "answered": len(t),
            "errors": out["errors"], "p50_ms": float(np.percentile(t, 50)) if len(t) else None,
            "p99_ms": float(np.percentile(t, 99)) if len(t) else None, "max_ms": float(t.max()) if len(t) else None,
            "wall_s": out["wall_s"], "rooms_left": [h["rooms"] for h in after],
            "connections_left": [h["connections"] for h in after]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=200)
    ap.add_argument("--instances", type=int, default=1, choices=(1, 2))
    a = ap.parse_args()
    r = measure(a.rooms, a.instances)
    print("| rooms | clients | instances | answered | errors | join-to-answer p50 ms | p99 ms | max ms | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['rooms']} | {r['clients']} | {r['instances']} | {r['answered']} | {len(r['errors'])} | "
          f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['wall_s']:.1f} |")
    print(f"after: rooms left per instance {r['rooms_left']}, connections left {r['connections_left']}")
    for e in r["errors"][:10]:
        print("error:", e)


if __name__ == "__main__":
    main()
