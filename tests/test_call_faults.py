"""End to end over a faulty network: two real ``csss call`` processes in separate network namespaces.

The link is ``tests/netimpair.py``'s userspace emulator (no ``sch_netem`` on these kernels): each direction
drops packets independently with probability ``loss`` and delays them by 10 ms + U(0, 30) ms, in order. The real
signaling server runs in namespace A on A's link address, party A (enrolled: its identity is ready at once) in
A, party B (identity learned live) in B; B's signaling and all media cross the impaired link. Skips when the
machine cannot make namespaces with TUN devices (not root, no ``/dev/net/tun``, ``ip netns add`` refused).

Figures are printed (``pytest -s``) and, when ``CSSS_ARTIFACTS`` names a folder, written there as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.call_faults import CSSS, PORT, call_across, figures, impairment
from csss_core.audio import read_audio, write_audio
from tests.conftest import voice_clip
from tests.netimpair import Impairment, NetPair, tcp_probe, udp_probe, unavailable

DURATION = 30.0
JITTER_MS = 30.0  # peak-to-peak: one-way delay uniform in [10, 40] ms
# the goal for the enrolled party's identity. Measured on this 2-core machine, seconds from "connected":
# at 5 % loss 6.2-8.3 s (9 runs); at 10 % loss 6.2, 6.2, 9.0, 11.2, 11.8, 14.8, 32.9 s and once none in 30 s;
# without loss 8.0 s with the 500 bit/s payload (7.9 s per copy), 3.0 s with the 1000 bit/s compact one
LOCK_GOAL_S = 10.0


def _artifact(name: str, data: dict[str, Any]) -> None:
    d = os.environ.get("CSSS_ARTIFACTS")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        (Path(d) / name).write_text(json.dumps(data, indent=1, default=str))


@pytest.fixture(scope="module")
def netns() -> None:
    why = unavailable()
    if why:
        pytest.skip(f"cannot emulate a network here: {why}")


@pytest.fixture(scope="module")
def clips(tiny_corpus, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A's clip (fest_ked), B's (flite_slt) and A's enrollment recording, as in tests/test_call.py."""
    d = tmp_path_factory.mktemp("fault_clips")
    a_in, b_in, enroll = d / "a_in.wav", d / "b_in.wav", d / "a_enroll.wav"
    write_audio(a_in, voice_clip(tiny_corpus, "fest_ked"), 16000)
    write_audio(b_in, voice_clip(tiny_corpus, "flite_slt"), 16000)
    ked = [u for u in tiny_corpus.utterances if u.speaker == "fest_ked"]
    write_audio(enroll, np.concatenate([read_audio(tiny_corpus.path(u))[0] for u in ked[-2:]]), 16000)
    return a_in, b_in, enroll


@pytest.fixture(scope="module")
def faulty_call(netns, clips, tmp_path_factory) -> Iterator[Callable[[float], tuple[dict, dict]]]:
    """``get(loss)``: one call at that loss (both ways) and 30 ms jitter, run once per module: (result, figures)."""
    cache: dict[float, tuple[dict, dict] | Exception] = {}

    def get(loss: float) -> tuple[dict, dict]:
        if loss not in cache:
            try:
                work = tmp_path_factory.mktemp(f"call_loss{round(100 * loss)}")
                with NetPair(*impairment(loss, JITTER_MS, seed=round(1000 * loss) + 7)) as net:
                    res = call_across(net, *clips, work, DURATION, room="faults")
                figs = figures(res, clips[0], clips[1], with_ge2e=loss < 0.1)
                cache[loss] = (res, figs)
                shown = {k: v for k, v in figs.items() if "delay" not in k}
                print(f"\nloss {100 * loss:.0f} % + jitter {JITTER_MS:.0f} ms each way ({res['wall_s']} s wall): "
                      f"{json.dumps(shown)}\n"
                      f"  link one-way delay ms: A>B {figs['net_delay_ms_a_to_b']}, B>A {figs['net_delay_ms_b_to_a']}")
                _artifact(f"call_faults_loss{round(100 * loss)}.json",
                          {"loss": loss, "jitter_ms": JITTER_MS, "duration_s": DURATION, "figures": figs,
                           "report_a": res["a"], "report_b": res["b"], "net": res["net"]})
            except Exception as exc:  # noqa: BLE001 (every test of this call fails with the same cause)
                cache[loss] = exc
        got = cache[loss]
        if isinstance(got, Exception):
            raise got
        return got

    yield get


def test_emulated_link_drops_and_delays_as_told(netns):
    imp = {"loss": 0.1, "delay_ms": 10.0, "jitter_ms": JITTER_MS}
    with NetPair(Impairment(**imp, seed=3), Impairment(**imp, seed=4)) as net:
        udp = udp_probe(net, n=400, interval=0.01)
        tcp = tcp_probe(net, nbytes=1_000_000)
        stats = net.stats()
    print(f"\nemulated link, 10 % loss + 10-40 ms each way: udp {json.dumps(udp)}; tcp {json.dumps(tcp)}")
    assert 0.12 <= udp["round_trip_loss"] <= 0.27, udp  # 1 - 0.9^2 = 0.19 expected
    assert udp["rtt_min_ms"] >= 20.0 and udp["rtt_p95_ms"] - udp["rtt_min_ms"] >= JITTER_MS, udp
    assert udp["rtt_median_ms"] <= 2 * (10.0 + JITTER_MS) + 20.0, udp
    assert tcp["bytes_received"] == tcp["bytes_sent"], tcp  # TCP gets through loss and jitter
    for c in stats.values():
        assert c["seen"] > 400 and c["dropped"] > 0 and c["overflow"] == 0, c
    assert net.dir is None and not any(n in _netns_list() for n in net.ns.values())  # all torn down


def _netns_list() -> str:
    import subprocess

    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("loss", [0.05, 0.10])
def test_call_keeps_running_through_loss_and_jitter(faulty_call, loss):
    res, figs = faulty_call(loss)
    ra, rb = res["a"], res["b"]
    assert res["a_rc"] == 0 and res["b_rc"] == 0, res["a_err"][-1500:] + res["b_err"][-1500:]
    for r in (ra, rb):
        assert r["connected"] and r["key_mode"] == "x25519+sas" and not r["errors"], json.dumps(r)
        # the call lasted its whole duration: the first party to reach it hangs up, the other hears its bye
        assert r["seconds_connected"] >= DURATION - 0.5, json.dumps(r)
        assert r["ended_by"] in ("duration", "peer-left")
    assert "duration" in (ra["ended_by"], rb["ended_by"])
    assert ra["sas"] and ra["sas"] == rb["sas"]
    # the link did what it was told: loss near the target each way, delays spread over the jitter range
    for way in ("a_to_b", "b_to_a"):
        c = res["net"][way]
        assert c["seen"] > 40 * DURATION and c["overflow"] == 0, c
        assert 0.6 * loss <= c["dropped"] / c["seen"] <= 1.5 * loss, c
        assert c["delay_ms"]["min"] >= 10.0 and c["delay_ms"]["p95"] - c["delay_ms"]["p5"] >= 0.6 * JITTER_MS, c
    # audio kept flowing and the receivers stayed on the sender's timeline, filling in what was lost
    for r, side in ((ra, "a"), (rb, "b")):
        assert r["frames_received"] >= 0.6 * 50 * DURATION, json.dumps(r)
        assert r["samples_concealed"] > 0
        heard_s = len(read_audio(res[f"{side}_heard"], sample_rate=None)[0]) / 48000
        assert heard_s >= DURATION - 3.0, heard_s
    assert res["health"]["rooms"] == 0
    # what each side heard follows the other's speech (pseudo-voice and reconstruction keep its timing): envelope
    # correlation measured 0.96 clean, 0.83-0.90 at 5 %, 0.71-0.78 at 10 %; another voice, noise, silence: <= 0.11
    assert figs["env_corr_b_heard_a_sent"] >= 0.5 and figs["env_corr_a_heard_b_sent"] >= 0.5, figs
    # PLCMOS is reported, not bounded: it rates concealment artefacts, not whether this is the sender's speech
    # (white noise scores 2.63, near-silence 1.55, the clean sent clip 3.12, what B heard without loss 1.66-1.99)
    assert 1.0 <= figs["plcmos_b_heard"] <= 5.0 and 1.0 <= figs["plcmos_a_heard"] <= 5.0, figs


def test_identity_locks_within_goal_at_5_percent_loss(faulty_call):
    res, figs = faulty_call(0.05)
    rb, ra = res["b"], res["a"]
    assert rb["identity_locked"] and rb["identity_authenticated"], rb["identity_reason"]
    assert rb["seconds_call_start_to_lock"] <= LOCK_GOAL_S, rb["seconds_call_start_to_lock"]
    # the live-learned identity too, within the call (measured at 5 %: 9.7-20.3 s, 9 runs)
    assert ra["identity_locked"] and ra["identity_authenticated"], ra["identity_reason"]
    # what B heard after the lock is A's own voice again (0.78-0.82 measured; loopback test: >= 0.70)
    assert figs["ge2e_b_heard_after_lock"] is not None and figs["ge2e_b_heard_after_lock"] >= 0.70, figs


def test_identity_locks_within_goal_at_10_percent_loss(faulty_call):
    res, _ = faulty_call(0.10)
    rb = res["b"]
    # Before the jitter-buffer fix in client/call.py the receiver lost ~3x what the network lost and this lock took
    # 6.2-32.9 s (or never came in 30 s); after it: 5.9 s (benchmarks/call_faults.py, one run).
    print(f"\n10 % loss: B's lock on A (enrolled) after {rb['seconds_call_start_to_lock']} s; "
          f"A's lock on B (live) after {res['a']['seconds_call_start_to_lock']} s; B: {rb['identity_reason']}")
    assert rb["identity_locked"] and rb["identity_authenticated"], rb["identity_reason"]
    assert rb["seconds_call_start_to_lock"] <= LOCK_GOAL_S, rb["seconds_call_start_to_lock"]
    ra = res["a"]
    assert not ra["identity_locked"] or ra["identity_authenticated"], ra["identity_reason"]


def test_receiver_loses_no_more_than_the_network(faulty_call):
    res, figs = faulty_call(0.10)
    net_loss = max(figs["net_loss_a_to_b"], figs["net_loss_b_to_a"])
    first, last = figs["b_mouth_to_ear_ms_first_last"]
    print(f"\nnetwork loss {100 * net_loss:.1f} %, concealed B {figs['b_concealed_pct']} % "
          f"A {figs['a_concealed_pct']} %; mouth-to-ear A>B {first} ms in 1-5 s, {last} ms in the last 10 s")
    assert figs["b_concealed_pct"] <= 100 * (1.5 * net_loss + 0.01)
    assert figs["a_concealed_pct"] <= 100 * (1.5 * net_loss + 0.01)
    # measured with the engine: 147-155 ms on a 10 ms link, 164-205 ms with 10-40 ms of jitter; with 10 % loss
    # 413-430 ms before the jitter-buffer fix, 176-178 ms after it
    assert last is not None and last <= 250.0


def test_peer_killed_mid_call_leaves_a_clear_state(netns, clips, tmp_path):
    a_in, b_in, _ = clips
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with NetPair(*impairment(0.05, JITTER_MS, seed=99)) as net:
        url = f"http://{net.addr_a}:{PORT}"
        with open(tmp_path / "server.log", "wb") as log:
            net.popen("a", [sys.executable, "-m", "server.main", "--host", net.addr_a, "--port", str(PORT)],
                      stdout=log, stderr=log, env=env)
        net.wait_http("a", url + "/health", 60)
        procs = {}
        for side, src in (("a", a_in), ("b", b_in)):
            with open(tmp_path / f"{side}.out", "wb") as out, open(tmp_path / f"{side}.err", "wb") as err:
                procs[side] = net.popen(side, [*CSSS, "call", "--server", url, "--room", "kill", "--no-engine",
                                               "--ice-host", net.addr[side], "--input-file", str(src),
                                               "--output-file", str(tmp_path / f"{side}_heard.wav"),
                                               "--duration", "60"], stdout=out, stderr=err, env=env)
            if side == "a":
                time.sleep(1.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                "[csss] connected" in (tmp_path / f"{s}.err").read_text(errors="replace") for s in "ab"):
            assert all(p.poll() is None for p in procs.values()), "a client ended before connecting"
            time.sleep(0.2)
        assert all("[csss] connected" in (tmp_path / f"{s}.err").read_text(errors="replace") for s in "ab")
        time.sleep(5.0)  # mid-call: media flowing both ways
        assert procs["a"].poll() is None and procs["b"].poll() is None
        killed = time.monotonic()
        os.kill(procs["b"].pid, signal.SIGKILL)  # ip netns exec execs: this is B's own process
        procs["a"].wait(timeout=45)
        a_ended_s = time.monotonic() - killed
        assert procs["b"].wait(timeout=10) == -signal.SIGKILL
        lines = (tmp_path / "a.out").read_text().strip().splitlines()
        assert procs["a"].returncode == 0 and lines, (tmp_path / "a.err").read_text()[-2000:]
        ra = json.loads(lines[-1])
        rooms, deadline = None, time.monotonic() + 10
        while time.monotonic() < deadline:
            rooms = net.http_get_json("a", url + "/health")["rooms"]
            if rooms == 0:
                break
            time.sleep(0.3)
        stats = net.stats()
    print(f"\npeer killed: A ended by {ra['ended_by']} {a_ended_s:.1f} s after the kill, connected "
          f"{ra['seconds_connected']} s, frames received {ra['frames_received']}; server rooms {rooms}")
    _artifact("call_faults_peer_killed.json", {"report_a": ra, "seconds_kill_to_end": a_ended_s, "rooms": rooms,
                                               "net": stats})
    assert ra["connected"] and ra["ended_by"] == "peer-left", json.dumps(ra)
    assert ra["frames_received"] > 100 and ra["seconds_connected"] < 30
    assert a_ended_s < 15.0
    assert rooms == 0
