"""The signaling server's limits, each against the real server (uvicorn) with the limit set low."""

import json
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import start_server, stop_server


def _recv(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


def _join(ws, room):
    ws.send(json.dumps({"type": "join", "room": room}))
    reply = _recv(ws)
    assert reply["type"] == "joined", reply
    return reply


def _closed_code(ws, timeout=5.0):
    """Read until the server closes; returns (close code, error codes seen before it)."""
    codes = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = _recv(ws, max(0.1, deadline - time.time()))
            codes.append(m.get("code"))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None, codes
    raise AssertionError(f"server did not close within {timeout} s (saw {codes})")


@pytest.fixture()
def limited(request):
    url, port, proc = start_server(env=request.param)
    yield url, port
    stop_server(proc)


def _health(port):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())


@pytest.mark.parametrize("limited", [{"CSSS_RATE_PER_S": "5", "CSSS_RATE_BURST": "10"}], indirect=True)
def test_rate_limit_refuses_a_flood_and_recovers(limited):
    url, _ = limited
    with connect(url) as ws:
        _join(ws, "rate")
        for _ in range(30):
            ws.send(json.dumps({"type": "offer", "sdp": "v=0"}))
        codes = [_recv(ws)["code"] for _ in range(30)]
        assert codes.count("no-peer") == 9  # the burst (10 incl. the join) went through to the room logic
        assert codes.count("rate-limited") >= 19  # the rest was refused (a token or so refills meanwhile)
        time.sleep(0.5)  # 2.5 tokens
        ws.send(json.dumps({"type": "offer", "sdp": "v=0"}))
        assert _recv(ws)["code"] == "no-peer"


@pytest.mark.parametrize("limited", [{"CSSS_JOIN_TIMEOUT_S": "1"}], indirect=True)
def test_a_connection_that_never_joins_is_closed(limited):
    url, port = limited
    with connect(url) as ws:
        t0 = time.time()
        code, codes = _closed_code(ws)
        assert code == 1008 and codes == ["closing"]
        assert 0.8 < time.time() - t0 < 3.0
    assert _health(port)["connections"] == 0


@pytest.mark.parametrize("limited", [{"CSSS_WAIT_TIMEOUT_S": "1.5"}], indirect=True)
def test_a_party_left_alone_too_long_is_sent_away_but_a_call_is_not(limited):
    url, port = limited
    with connect(url) as lonely:
        _join(lonely, "lonely")
        t0 = time.time()
        with connect(url) as a, connect(url) as b:
            _join(a, "pair")
            time.sleep(0.5)
            _join(b, "pair")
            assert _recv(a)["type"] == "peer-joined"
            code, codes = _closed_code(lonely)
            assert code == 1000 and codes == ["closing"] and 1.2 < time.time() - t0 < 4.0
            time.sleep(1.5)  # the pair is past the wait timeout, but it is not alone
            a.send(json.dumps({"type": "offer", "sdp": "still here"}))
            assert _recv(b)["sdp"] == "still here"
            b.close()
            assert _recv(a)["type"] == "peer-left"
            code, _ = _closed_code(a)  # alone again: the wait timeout starts over
            assert code == 1000
    time.sleep(0.3)
    h = _health(port)
    assert h["rooms"] == 0 and h["connections"] == 0


@pytest.mark.parametrize("limited", [{"CSSS_MAX_ERRORS": "5"}], indirect=True)
def test_too_many_refused_messages_close_the_connection(limited):
    url, _ = limited
    with connect(url) as ws:
        for _ in range(4):
            ws.send("nonsense")
            assert _recv(ws)["code"] == "bad-json"
        ws.send(b"\x00\x01")  # binary frame: refused like the rest
        assert _recv(ws)["code"] == "binary"
        code, codes = _closed_code(ws)
        assert code == 1008 and codes == ["closing"]


@pytest.mark.parametrize("limited", [{"CSSS_MAX_CONNECTIONS": "3"}], indirect=True)
def test_connection_limit(limited):
    url, _ = limited
    with connect(url) as a, connect(url) as b, connect(url) as c:
        for ws, room in ((a, "x"), (b, "x"), (c, "y")):
            _join(ws, room)
        with connect(url) as d:
            code, codes = _closed_code(d)
            assert code == 1013 and codes == ["busy"]
    with connect(url) as e:  # slots come back when connections end
        _join(e, "z")


def test_oversized_frames_are_cut_off_by_the_websocket_layer_and_the_server_lives_on(server):
    url, port, _ = server
    with connect(url) as ws:
        ws.send(json.dumps({"type": "offer", "sdp": "x" * 300_000}))
        code, codes = _closed_code(ws)
        assert code == 1009 and codes == []
    with connect(url) as ws:
        ws.send(json.dumps({"type": "offer", "sdp": "x" * 70_000}))  # over the message limit, under the frame's
        assert _recv(ws)["code"] == "too-large"
        _join(ws, "after-big")
    assert _health(port)["status"] == "ok"
