import asyncio
import json
import urllib.request

import pytest
import websockets


async def _recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))


def test_two_parties_join_and_relay_and_a_third_is_refused(server):
    url, port, _ = server

    async def go():
        async with websockets.connect(url) as a, websockets.connect(url) as b, websockets.connect(url) as c:
            await a.send(json.dumps({"type": "join", "room": "r1"}))
            ja = await _recv(a)
            assert ja["type"] == "joined" and ja["peers"] == 1 and ja["ice_servers"] == []
            await b.send(json.dumps({"type": "join", "room": "r1"}))
            assert (await _recv(b))["peers"] == 2
            assert (await _recv(a))["type"] == "peer-joined"
            await a.send(json.dumps({"type": "offer", "sdp": "v=0 offer"}))
            assert await _recv(b) == {"type": "offer", "sdp": "v=0 offer", "from": ja["id"]}
            await b.send(json.dumps({"type": "answer", "sdp": "v=0 answer"}))
            assert (await _recv(a))["sdp"] == "v=0 answer"
            await a.send(json.dumps({"type": "key", "public_key": "ab" * 32}))
            assert (await _recv(b))["public_key"] == "ab" * 32
            await c.send(json.dumps({"type": "join", "room": "r1"}))
            err = await _recv(c)
            assert err["type"] == "error" and err["code"] == "room-full"
            # c can still use its connection: another room works
            await c.send(json.dumps({"type": "join", "room": "r2"}))
            assert (await _recv(c))["type"] == "joined"

    asyncio.run(go())
    body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
    assert body["rooms"] == 0  # every party left, no room left behind


@pytest.mark.parametrize("payload,code", [
    ("not json", "bad-json"),
    (json.dumps({"type": "dance"}), "bad-message"),
    (json.dumps({"type": "join", "room": "bad room!"}), "bad-message"),
    (json.dumps({"type": "key", "public_key": "zz"}), "bad-message"),
    (json.dumps({"type": "offer", "sdp": "x"}), "not-joined"),
    (json.dumps({"type": "offer", "sdp": "x" * 70000}), "too-large"),
    (json.dumps([1, 2, 3]), "bad-message"),
])
def test_malformed_messages_get_errors_and_the_connection_stays_usable(server, payload, code):
    url, _, _ = server

    async def go():
        async with websockets.connect(url, max_size=2**20) as ws:
            await ws.send(payload)
            err = await _recv(ws)
            assert err["type"] == "error" and err["code"] == code
            await ws.send(json.dumps({"type": "join", "room": f"ok-{code}"}))
            assert (await _recv(ws))["type"] == "joined"

    asyncio.run(go())


def test_a_vanished_peer_frees_its_slot_and_the_other_is_told(server):
    url, _, proc = server

    async def go():
        async with websockets.connect(url) as a:
            await a.send(json.dumps({"type": "join", "room": "v"}))
            await _recv(a)
            b = await websockets.connect(url)
            await b.send(json.dumps({"type": "join", "room": "v"}))
            await _recv(b)
            await _recv(a)  # peer-joined
            b.transport.abort()  # vanish without a close handshake
            assert (await _recv(a))["type"] == "peer-left"
            async with websockets.connect(url) as c:
                await c.send(json.dumps({"type": "join", "room": "v"}))
                assert (await _recv(c))["peers"] == 2

    asyncio.run(go())
    assert proc.poll() is None  # the server is still running


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
def test_listeners_hear_about_parties_and_talk_only_to_one_of_them(shared):
    from contextlib import ExitStack

    from websockets.sync.client import connect

    from benchmarks.signaling_load import start_redis, start_servers

    def recv(ws):
        return json.loads(ws.recv(timeout=5))

    def join(ws, room, role="party"):
        ws.send(json.dumps({"type": "join", "room": room, "role": role}))
        return recv(ws)

    with ExitStack() as stack:
        ports = start_servers(stack, 2 if shared else 1, start_redis(stack) if shared else None)
        u1, u2 = f"ws://127.0.0.1:{ports[0]}/ws", f"ws://127.0.0.1:{ports[-1]}/ws"
        with connect(u1) as a, connect(u2) as b, connect(u2) as ear:
            ja = join(a, "lr")
            jl = join(ear, "lr", "listener")
            assert jl["role"] == "listener" and jl["peers"] == 1 and jl["parties"] == [ja["id"]]
            assert recv(a) == {"type": "listener-joined", "id": jl["id"]}
            jb = join(b, "lr")
            assert jb["peers"] == 2 and jb["parties"] == [ja["id"]] and jb["listeners"] == [jl["id"]]
            assert recv(a) == {"type": "peer-joined", "id": jb["id"], "role": "party"}
            assert recv(ear) == {"type": "peer-joined", "id": jb["id"], "role": "party"}
            # the parties' own traffic (keys included) never reaches the listener
            a.send(json.dumps({"type": "key", "commit": "cd" * 32}))
            assert recv(b)["commit"] == "cd" * 32
            a.send(json.dumps({"type": "key", "commit": "cd" * 32, "to": jl["id"]}))
            assert recv(a)["code"] == "bad-message"
            # a listener may only address one party, and no keys
            ear.send(json.dumps({"type": "offer", "sdp": "listen"}))
            assert recv(ear)["code"] == "listener"
            ear.send(json.dumps({"type": "key", "public_key": "ab" * 32, "to": ja["id"]}))
            assert recv(ear)["code"] in ("listener", "bad-message")
            ear.send(json.dumps({"type": "offer", "sdp": "listen", "to": jb["id"]}))
            assert recv(b) == {"type": "offer", "sdp": "listen", "from": jl["id"]}
            b.send(json.dumps({"type": "answer", "sdp": "ok", "to": jl["id"]}))
            assert recv(ear) == {"type": "answer", "sdp": "ok", "from": jb["id"]}
            ear.send(json.dumps({"type": "offer", "sdp": "x", "to": "0" * 32}))
            assert recv(ear)["code"] == "no-such-peer"
            # four listeners at most
            extra = [stack.enter_context(connect(u1)) for _ in range(4)]
            codes = [join(e, "lr", "listener").get("code", "joined") for e in extra]
            assert codes == ["joined", "joined", "joined", "room-full"]
            for _ in extra[:3]:
                assert recv(a)["type"] == "listener-joined" and recv(b)["type"] == "listener-joined"
            ear.close()
            assert recv(a) == {"type": "listener-left", "id": jl["id"]}
            assert recv(b) == {"type": "listener-left", "id": jl["id"]}
            b.close()
            assert recv(a)["type"] == "peer-left"
            assert recv(extra[0]) == {"type": "peer-left", "id": jb["id"], "role": "party"}
