"""The signaling server fuzzed with at least 10,000 hostile messages (hypothesis), over real WebSockets.

Every message gets exactly one answer (an ``error``, or ``joined`` for a valid join) or the server
closes the connection cleanly (1000/1008/1009, never 1011); meanwhile a healthy pair in another room
keeps relaying, and the server's log has no traceback.
"""

import json
import string
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import start_server, stop_server

MESSAGES_PER_EXAMPLE = 40
EXAMPLES = 260  # 10,400 messages
CLEAN_CLOSES = {1000, 1008, 1009}
TYPES = ["join", "offer", "answer", "candidate", "key", "bye", "joined", "error", "peer-left", "", "JOIN", None]

json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_value = st.recursive(json_scalar, lambda v: st.lists(v, max_size=4) | st.dictionaries(st.text(max_size=8), v,
                                                                                          max_size=4), max_leaves=12)
room_name = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=70) | st.text(
    max_size=80)
hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

typed = st.fixed_dictionaries({"type": st.sampled_from(TYPES)}, optional={
    "room": room_name | json_value, "sdp": st.text(max_size=200) | json_value, "candidate": st.text(max_size=80),
    "sdpMid": json_value, "sdpMLineIndex": json_value, "commit": hex64 | json_value,
    "public_key": hex64 | json_value, "extra": json_value, "to": hex64.map(lambda h: h[:32]) | json_value,
    "role": st.sampled_from(["party", "listener", "admin"]) | json_value})
valid = st.one_of(
    st.builds(lambda r, role: {"type": "join", "room": "fz-" + r, "role": role},
              st.text(string.ascii_letters, min_size=1, max_size=20), st.sampled_from(["party", "listener"])),
    st.builds(lambda s, h: {"type": "offer", "sdp": s, "to": h[:32]}, st.text(max_size=100), hex64),
    st.builds(lambda s: {"type": "offer", "sdp": s}, st.text(max_size=300)),
    st.builds(lambda s: {"type": "answer", "sdp": s}, st.text(max_size=300)),
    st.builds(lambda c, i: {"type": "candidate", "candidate": c, "sdpMid": "0", "sdpMLineIndex": i},
              st.text(max_size=100), st.integers(0, 3)),
    st.builds(lambda h: {"type": "key", "commit": h}, hex64),
    st.builds(lambda h: {"type": "key", "public_key": h}, hex64),
    st.just({"type": "bye"}),
)
frame = st.one_of(
    st.text(max_size=200),  # not JSON, or JSON that is no object
    json_value.map(json.dumps),
    typed.map(json.dumps),
    valid.map(json.dumps),
    st.integers(60_000, 70_000).map(lambda n: json.dumps({"type": "offer", "sdp": "x" * n})),  # around the limit
    st.integers(130_000, 200_000).map(lambda n: json.dumps({"type": "offer", "sdp": "y" * n})),  # over the frame
    st.binary(max_size=64),
    st.integers(1, 2000).map(lambda d: "[" * d + "]" * d),  # deep nesting
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    # limits high enough that parsing and room logic are what gets fuzzed (the limits have their own tests)
    url, port, proc = start_server(env={"CSSS_RATE_PER_S": "100000", "CSSS_RATE_BURST": "100000",
                                        "CSSS_MAX_ERRORS": "1000000"}, log=log)
    yield url, port, proc, log
    stop_server(proc)


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")
def test_fuzzed_messages_are_answered_or_closed_cleanly_and_other_rooms_are_unaffected(fuzz_server):
    url, port, proc, log = fuzz_server
    room = "healthy-" + uuid.uuid4().hex
    counts = {"sent": 0, "errors": 0, "joined": 0, "closed": 0, "relayed_ok": 0}
    with connect(url) as a, connect(url) as b:
        ids = []
        for ws in (a, b):
            ws.send(json.dumps({"type": "join", "room": room}))
            joined = json.loads(ws.recv(timeout=5))
            assert joined["type"] == "joined"
            ids.append(joined["id"])
        a_id = ids[0]
        assert json.loads(a.recv(timeout=5))["type"] == "peer-joined"

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(frame, min_size=MESSAGES_PER_EXAMPLE, max_size=MESSAGES_PER_EXAMPLE))
        def run(frames):
            ws = connect(url, max_size=2**20)
            try:
                for f in frames:
                    counts["sent"] += 1
                    try:
                        ws.send(f)
                        reply = json.loads(ws.recv(timeout=10))
                    except ConnectionClosed as exc:
                        code = exc.rcvd.code if exc.rcvd else None
                        assert code in CLEAN_CLOSES, f"server closed with {code} after {f[:80]!r}"
                        counts["closed"] += 1
                        ws = connect(url, max_size=2**20)
                        continue
                    assert reply["type"] in ("error", "joined"), (f[:80], reply)
                    counts["errors" if reply["type"] == "error" else "joined"] += 1
            finally:
                ws.close()
            # the healthy room still works, message for message
            probe = {"type": "offer", "sdp": f"probe {counts['sent']}"}
            a.send(json.dumps(probe))
            got = json.loads(b.recv(timeout=5))
            assert got.pop("from") == a_id and got == probe
            counts["relayed_ok"] += 1

        run()
    print(counts)
    assert counts["sent"] >= 10_000
    assert counts["sent"] == counts["errors"] + counts["joined"] + counts["closed"]
    assert counts["relayed_ok"] == EXAMPLES
    assert counts["closed"] > 0 and counts["joined"] > 0  # the strategies reached both paths
    assert proc.poll() is None
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    assert health["status"] == "ok" and health["connections"] == 0 and health["rooms"] == 0
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]
