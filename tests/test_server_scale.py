"""Load (200 rooms, 400 clients on one server) and scale-out (two servers sharing rooms through Redis)."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
from websockets.sync.client import connect

from benchmarks.signaling_load import free_port, health, measure, start_redis, start_servers, wait_until


def _recv(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


def _join(ws, room):
    ws.send(json.dumps({"type": "join", "room": room}))
    return _recv(ws)


@pytest.mark.parametrize("instances", [1, 2])
def test_200_rooms_400_clients_all_answered(instances):
    r = measure(200, instances)
    print(r | {"errors": len(r["errors"])})
    assert r["errors"] == [] and r["answered"] == 200
    assert r["rooms_left"] == [0] * instances and r["connections_left"] == [0] * instances


def test_two_instances_serve_one_room_through_redis():
    with ExitStack() as stack:
        redis_url = start_redis(stack)
        p1, p2 = start_servers(stack, 2, redis_url)
        u1, u2 = f"ws://127.0.0.1:{p1}/ws", f"ws://127.0.0.1:{p2}/ws"
        with connect(u1) as a, connect(u2) as b:
            assert _join(a, "shared")["peers"] == 1
            assert _join(b, "shared")["peers"] == 2
            assert _recv(a)["type"] == "peer-joined"
            for src, dst, msg in ((a, b, {"type": "offer", "sdp": "o"}), (b, a, {"type": "answer", "sdp": "x"}),
                                  (a, b, {"type": "key", "commit": "ab" * 32}),
                                  (b, a, {"type": "candidate", "candidate": "c", "sdpMid": "0"})):
                src.send(json.dumps(msg))
                got = _recv(dst)
                assert "from" in got and {k: v for k, v in got.items() if k != "from"} == msg
            for u in (u1, u2):  # the room is full on every instance
                with connect(u) as c:
                    assert _join(c, "shared")["code"] == "room-full"
            assert health(p1)["rooms"] == 1 and health(p2)["rooms"] == 1
            b.close()
            assert _recv(a)["type"] == "peer-left"  # told across instances
            with connect(u2) as c:  # the slot is free again, on the other instance
                assert _join(c, "shared")["peers"] == 2
                assert _recv(a)["type"] == "peer-joined"
        time.sleep(0.3)
        assert health(p1)["rooms"] == 0 and health(p2)["rooms"] == 0


def test_a_dead_instance_frees_its_parties_slots_after_the_ttl():
    with ExitStack() as stack:
        redis_url = start_redis(stack)
        (p1,) = start_servers(stack, 1, redis_url)
        port = free_port()
        doomed = subprocess.Popen([sys.executable, "-m", "server.main", "--host", "127.0.0.1", "--port", str(port),
                                   "--redis", redis_url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "CSSS_REDIS_PEER_TTL_S": "2"})
        stack.callback(lambda: doomed.poll() is None and doomed.kill())
        wait_until(lambda: health(port)["status"] == "ok", "doomed server")
        ghost_a = connect(f"ws://127.0.0.1:{port}/ws")
        ghost_b = connect(f"ws://127.0.0.1:{port}/ws")
        assert _join(ghost_a, "ttl")["peers"] == 1 and _join(ghost_b, "ttl")["peers"] == 2
        doomed.send_signal(signal.SIGKILL)  # no goodbye to Redis
        doomed.wait(5)
        with connect(f"ws://127.0.0.1:{p1}/ws") as c:
            assert _join(c, "ttl")["code"] == "room-full"  # the dead parties still hold their slots...
        time.sleep(2.5)
        with connect(f"ws://127.0.0.1:{p1}/ws") as c:
            assert _join(c, "ttl")["peers"] == 1  # ...until their liveness keys expire
