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
            assert await _recv(b) == {"type": "offer", "sdp": "v=0 offer"}
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
