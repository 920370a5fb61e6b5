"""End to end: the real signaling server and two real ``csss call`` processes on 127.0.0.1.

Each client sends a speech file through its engine and Opus (aiortc) and writes what it hears; the
received audio is the pseudo-voice until the hidden identity locks and the sender's real voice after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from csss_core.audio import read_audio, write_audio
from tests.conftest import free_port, voice_clip, wait_http

CSSS = [sys.executable, "-m", "client.cli"]


@pytest.fixture()
def logged_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """csss-server on a free port with its log in a file: (http URL, log path)."""
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "server.main", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=f, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 30)
        yield url, log
        proc.terminate()
        proc.wait(timeout=10)


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=5) as r:
        return json.loads(r.read())


def _call(url: str, room: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([*CSSS, "call", "--server", url, "--room", room, "--ice-host", "127.0.0.1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _report(p: subprocess.Popen, timeout: float) -> tuple[dict, str]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1]), err


def test_two_clients_call_through_the_real_server(tiny_corpus, logged_server, tmp_path):
    url, log = logged_server
    a_in, b_in = tmp_path / "a_in.wav", tmp_path / "b_in.wav"
    write_audio(a_in, voice_clip(tiny_corpus, "fest_ked"), 16000)
    write_audio(b_in, voice_clip(tiny_corpus, "flite_slt"), 16000)
    a_out, b_out = tmp_path / "a_heard.wav", tmp_path / "b_heard.wav"
    # A enrolled beforehand with a different recording (its identity is ready at once); B's is learned live
    enroll = tmp_path / "a_enroll.wav"
    ked = [u for u in tiny_corpus.utterances if u.speaker == "fest_ked"]
    write_audio(enroll, np.concatenate([read_audio(tiny_corpus.path(u))[0] for u in ked[-2:]]), 16000)
    duration = "30"
    # both hold the same key file (mixed into the per-call agreement); it must never show up in any output
    keyfile = tmp_path / "call.key"
    psk_hex = "5e" * 32
    keyfile.write_text(psk_hex + "\n")
    a = _call(url, "e2e", "--input-file", str(a_in), "--output-file", str(a_out), "--duration", duration, "--seed", "1",
              "--enroll", str(enroll), "--key-file", str(keyfile))
    time.sleep(1.0)
    b = _call(url, "e2e", "--input-file", str(b_in), "--output-file", str(b_out), "--duration", duration, "--seed", "2",
              "--key-file", str(keyfile))
    ra, err_a = _report(a, 120)
    rb, err_b = _report(b, 120)
    for out in (json.dumps(ra), json.dumps(rb), err_a, err_b):
        assert psk_hex not in out and "5E5E5E5E" not in out
    for r in (ra, rb):
        assert r["connected"] and r["key_mode"] == "x25519+psk+sas"
        assert r["identity_locked"] and r["identity_authenticated"], json.dumps(r)
        assert r["seconds_call_start_to_lock"] is not None and r["seconds_call_start_to_lock"] < 28
        assert r["frames_received"] > 1000 and not r["errors"]
    assert ra["initiator"] != rb["initiator"]
    assert ra["sas"] and ra["sas"] == rb["sas"]
    assert "identity verified" in err_a and f"SAS {ra['sas']}" in err_a  # the status line the user sees
    print(f"call start to identity lock: A heard B's after {ra['seconds_call_start_to_lock']} s (B learned live), "
          f"B heard A's after {rb['seconds_call_start_to_lock']} s (A enrolled)")
    assert rb["seconds_call_start_to_lock"] < 8  # enrolled: one payload frame (2.9 s) plus connection set-up

    from resemblyzer import VoiceEncoder, preprocess_wav

    ve = VoiceEncoder(device="cpu", verbose=False)

    def emb(x: np.ndarray) -> np.ndarray:
        return ve.embed_utterance(preprocess_wav(x, source_sr=16000))

    # what B heard from A (and A from B): pseudo-voice before the lock, the real voice after it
    for heard_path, orig_path, rep in ((b_out, a_in, rb), (a_out, b_in, ra)):
        heard, _ = read_audio(heard_path)
        orig, _ = read_audio(orig_path)
        lock = int((rep["seconds_audio_to_lock"] + 1.0) * 16000)
        e = emb(orig)
        before, after = float(e @ emb(heard[:lock])), float(e @ emb(heard[lock:]))
        print(f"{heard_path.name}: ASV cosine to the sender's voice before lock {before:.3f}, after {after:.3f}")
        assert after > before + 0.03
        # issue 6's bound, 0.85, for the enrolled caller (measured 0.874-0.876 in three runs); the live-learned
        # one's "after" still holds ~3 s of the payload's acquisition preamble, which cannot be fully undone
        # (measured 0.851-0.854): a looser bound, so that a loaded machine does not fail the suite
        assert after >= (0.85 if rep is rb else 0.80)

    # the server relayed only signaling: a few kB, while 30 s of 96 kbit/s Opus would be ~360 kB each way
    h = _health(url)
    assert 0 < h["bytes_relayed"] < 40_000 and h["rooms"] == 0
    text = log.read_text()
    assert "join room=e2e" in text and "leave room=e2e" in text
    assert "v=0" not in text and "a=fingerprint" not in text and "public_key" not in text  # no SDP or keys
    assert psk_hex not in text and "commit" not in text


def test_third_party_refused_and_vanished_peer_ends_the_call(logged_server, tmp_path):
    url, _ = logged_server
    a = _call(url, "r2", "--silent", "--output-file", str(tmp_path / "a_heard.wav"), "--no-engine", "--duration", "60")
    time.sleep(1.0)
    b = _call(url, "r2", "--silent", "--output-file", str(tmp_path / "b_heard.wav"), "--no-engine", "--duration", "60")
    deadline = time.time() + 30
    while _health(url)["messages_relayed"] < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    c = _call(url, "r2", "--silent", "--output-file", str(tmp_path / "c_heard.wav"), "--no-engine")
    out, err = c.communicate(timeout=60)
    assert c.returncode == 1 and "already has two parties" in err
    b.send_signal(signal.SIGKILL)  # vanishes without a bye
    ra, _ = _report(a, 60)
    assert ra["connected"] and ra["ended_by"] == "peer-left"
    assert _health(url)["rooms"] == 0


def test_peer_hanging_up_is_peer_left_even_when_its_media_closes_before_its_bye(logged_server, tmp_path):
    # the race behind a flaky CI run: the peer hangs up, its DTLS close reaches this party before its bye
    # (relayed by the server) does, and aiortc closes this party's connection. That is the peer leaving.
    # Here B's bye is never sent and its signaling socket closes 3 s late, so A learns it from the closed
    # connection first: A must say peer-left, not connection-closed.
    import asyncio

    from client.call import Call, CallOptions

    url, _ = logged_server

    def opts(duration: float, heard: str) -> CallOptions:
        return CallOptions(server=url, room="r-bye", silent=True, output_file=str(tmp_path / heard), engine=False,
                           duration=duration, ice_hosts=["127.0.0.1"], status=False)

    class SlowSignalingCall(Call):
        """Hangs up without a bye, and its signaling socket closes 3 s after its media connection (as when
        lost TCP segments hold up the signaling path)."""

        async def _send(self, msg: dict) -> None:
            if msg.get("type") != "bye":
                await super()._send(msg)

        async def _close(self) -> None:
            ws_close = self._ws.close

            async def slow_close(*args: object, **kw: object) -> None:
                await asyncio.sleep(3.0)
                await ws_close(*args, **kw)

            self._ws.close = slow_close
            await super()._close()

    a, b = Call(opts(60.0, "a_heard.wav")), SlowSignalingCall(opts(3.0, "b_heard.wav"))

    async def both() -> tuple:
        ta = asyncio.create_task(a.run())
        await asyncio.sleep(0.5)
        return await asyncio.wait_for(asyncio.gather(ta, b.run()), 60)

    ra, rb = asyncio.run(both())
    assert ra.connected and rb.connected
    assert rb.ended_by == "duration"
    assert ra.ended_by == "peer-left", ra
    assert ra.seconds_connected < 20
    deadline = time.time() + 10  # B's socket closes 3 s late: then the room is empty
    while _health(url)["rooms"] and time.time() < deadline:
        time.sleep(0.2)
    assert _health(url)["rooms"] == 0


def test_unreachable_server_is_a_one_line_error():
    p = _call(f"http://127.0.0.1:{free_port()}", "x", "--silent", "--output-file", "/tmp/never.wav")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert err.strip().splitlines()[-1].startswith("csss: error: cannot reach the signaling server")


def test_gap_filler_keeps_the_sender_timeline():
    import numpy as np

    from client.media import FRAME, GapFiller

    g = GapFiller()
    a = np.full(FRAME, 0.4, np.float32)
    start = 2**32 - FRAME  # the RTP timestamp wraps between the first and second frame
    assert [len(c) for c in g.push(start, a)] == [FRAME]
    assert [len(c) for c in g.push(0, a)] == [FRAME]  # contiguous across the wrap
    out = g.push(3 * FRAME, a)  # frames at FRAME and 2*FRAME were lost
    assert [len(c) for c in out] == [FRAME, FRAME, FRAME]
    assert np.allclose(out[0], 0.2) and np.allclose(out[1], 0.1)  # the last frame at halving gain
    assert g.concealed == 2 * FRAME
    assert g.push(2 * FRAME, a) == [] and g.late == 1  # too late: its time was already filled
    half = g.push(4 * FRAME - FRAME // 2, a)  # overlaps the expected position by half a frame
    assert [len(c) for c in half] == [FRAME // 2]
    assert [len(c) for c in g.push(10**6, a)] == [FRAME] and g.restarts == 1  # a long jump restarts
    total = sum(len(c) for c in g.push(10**6 + FRAME, a))
    assert total == FRAME
