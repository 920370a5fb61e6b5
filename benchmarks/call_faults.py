"""A real call over a lossy, jittery network: identity lock time, concealment and quality per condition.

The network is ``tests/netimpair.py``'s userspace emulator (this kernel has no ``sch_netem``): two network
namespaces joined by TUN devices and two forwarder processes that drop packets (independently, probability
``loss``) and delay them by ``delay + U(0, jitter)`` ms, keeping their order, each direction with its own seed.
The real signaling server runs in namespace A on A's link address, party A (``--enroll``: its identity is
ready from the start) in A, party B (its identity learned live) in B; both send a speech clip for
``--seconds`` and write what they hear. Needs root, ``/dev/net/tun`` and ``ip netns``.

    .venv/bin/python benchmarks/call_faults.py [--corpus corpus] [--seconds 30] [--conditions 0:0,0:30,5:30,10:30]

Per condition (loss %, jitter ms; base delay 10 ms each way): the loss the link really applied; B's lock on A's
identity (enrolled sender) and A's on B's (learned live), in seconds from "connected"; samples concealed by the
receiver's ``GapFiller`` (% of what it played) and late frames; mouth-to-ear delay A to B (median over 1-5 s of
the call and over its last 10 s: ``--timing-file`` times, content aligned by the speech envelope, 10 ms
resolution); the correlation of what was heard with the sent speech's energy envelope (is it the sender's
speech at all); PLCMOS (speechmos, 1..5) of what each side heard, and of the clean sent clips for reference;
GE2E cosine of what B heard after the lock to A's original voice (>= 0.7 in the loopback test).
``--no-engine`` runs plain calls (the network and the receive path only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from csss_core.audio import read_audio, write_audio  # noqa: E402
from tests.netimpair import Impairment, NetPair, unavailable  # noqa: E402

CSSS = [sys.executable, "-m", "client.cli"]
PORT = 8765  # each pair's namespace A is fresh: any port is free there


def impairment(loss: float, jitter_ms: float, delay_ms: float = 10.0, seed: int = 1) -> tuple[Impairment, Impairment]:
    """The same conditions both ways, different random draws."""
    return (Impairment(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms, seed=seed),
            Impairment(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms, seed=seed + 1000))


def _report(out: Path) -> dict[str, Any]:
    lines = out.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def call_across(net: NetPair, a_in: Path, b_in: Path, enroll: Path | None, work: Path, seconds: float,
                room: str = "faults", extra: list[str] | None = None, timeout: float = 150.0) -> dict[str, Any]:
    """One call through the emulated link: server and A in namespace A, B in namespace B.

    Returns both JSON reports, exit codes, the ends of their stderr, the server's ``/health`` after the
    call, the link's counters and the paths of what each side heard.
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    url = f"http://{net.addr_a}:{PORT}"
    t_start = time.monotonic()
    with open(work / "server.log", "wb") as log:
        net.popen("a", [sys.executable, "-m", "server.main", "--host", net.addr_a, "--port", str(PORT)],
                  cwd=ROOT, stdout=log, stderr=log, env=env)
    net.wait_http("a", url + "/health", 60)
    common = ["call", "--server", url, "--room", room, "--duration", str(seconds), *(extra or [])]
    procs = {}
    for side, src, seed in (("a", a_in, "1"), ("b", b_in, "2")):
        args = [*CSSS, *common, "--ice-host", net.addr[side], "--input-file", str(src),
                "--output-file", str(work / f"{side}_heard.wav"), "--seed", seed,
                "--timing-file", str(work / f"{side}_timing.json")]
        if side == "a" and enroll is not None:
            args += ["--enroll", str(enroll)]
        with open(work / f"{side}.out", "wb") as out, open(work / f"{side}.err", "wb") as err:
            procs[side] = net.popen(side, args, cwd=ROOT, stdout=out, stderr=err, env=env)
        if side == "a":
            time.sleep(1.0)  # A is the initiator
    t0 = time.monotonic()
    for p in procs.values():
        p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    res: dict[str, Any] = {"seconds": seconds}
    for side, p in procs.items():
        res[side] = _report(work / f"{side}.out")
        res[f"{side}_rc"] = p.returncode
        res[f"{side}_err"] = (work / f"{side}.err").read_text(errors="replace")[-3000:]
        res[f"{side}_heard"] = work / f"{side}_heard.wav"
        tf = work / f"{side}_timing.json"
        res[f"{side}_timing"] = json.loads(tf.read_text()) if tf.exists() else None
    res["wall_s"] = round(time.monotonic() - t_start, 1)
    res["health"] = net.http_get_json("a", url + "/health")
    res["net"] = net.stats()
    return res


ENV_HOP = 160  # 10 ms at 16 kHz


def envelope_alignment(sent: Path, heard: Path, lags_s: tuple[float, float] = (-5.0, 2.0)) -> tuple[float, float]:
    """(correlation, lag in s) of 10 ms log-energy envelopes (floored 50 dB below the peak) at the best lag.

    The pseudo-voice and the reconstruction keep the sender's timing, so what was heard follows the sent
    speech's envelope: measured 0.96 on a clean link, 0.84-0.90 at 5 % loss, 0.71-0.78 at 10 %, while another
    speaker's clip, white noise or silence give 0.05-0.11. The lag is where sent sample 0 lies in the heard file
    (negative when the first frames were sent before the connection was up, since the receiver's timeline
    starts at the first packet it gets).
    """

    def env(x: np.ndarray) -> np.ndarray:
        m = len(x) // ENV_HOP
        e = 10 * np.log10(np.mean(x[: m * ENV_HOP].reshape(m, ENV_HOP) ** 2, axis=1) + 1e-10)
        return np.maximum(e, e.max() - 50.0)

    es, eh = env(read_audio(sent)[0]), env(read_audio(heard)[0])
    best, best_lag = -1.0, 0
    for lag in range(int(lags_s[0] * 100), int(lags_s[1] * 100) + 1):
        a, b = (es, eh[lag:]) if lag >= 0 else (es[-lag:], eh)
        n = min(len(a), len(b))
        if n < 300 or np.std(a[:n]) == 0 or np.std(b[:n]) == 0:
            continue
        c = float(np.corrcoef(a[:n], b[:n])[0, 1])
        if c > best:
            best, best_lag = c, lag
    return best, best_lag / 100.0


def mouth_to_ear_ms(sender: dict[str, Any] | None, receiver: dict[str, Any] | None, lag_s: float,
                    spans: tuple[tuple[float, float], ...] = ((1.0, 5.0), (-10.0, 0.0))) -> list[float | None]:
    """Median mouth-to-ear delay over spans of the call (seconds of received audio; negative: from its end).

    The receiver's ``GapFiller`` keeps what it plays on the sender's RTP timeline, so played sample ``n`` holds
    the content of sent sample ``n - lag`` (``lag`` from :func:`envelope_alignment`, 10 ms resolution; it
    includes the engines' algorithmic delay). Its mouth-to-ear delay is the time it was played (``--timing-file``
    of the receiver) minus the time the sender's file source had that sample (both processes read the same
    monotonic clock).
    """
    if not sender or not receiver or sender.get("source_start") is None or not receiver.get("sink_times"):
        return [None for _ in spans]
    st = np.array(receiver["sink_times"], dtype=np.float64)
    rate = float(receiver.get("rate", 48000))
    pos = st[:, 0] / rate
    delay = 1000.0 * (st[:, 1] - (sender["source_start"] + pos - lag_s))
    end = pos[-1]
    out: list[float | None] = []
    for lo, hi in spans:
        lo, hi = (end + lo, end + hi) if lo < 0 else (lo, hi)
        sel = delay[(pos >= lo) & (pos < hi)]
        out.append(round(float(np.median(sel)), 1) if len(sel) else None)
    return out


def concealed_fraction(rep: dict[str, Any], heard: Path) -> float:
    """Share of the played samples (48 kHz) that the receiver filled in for lost packets."""
    n = len(read_audio(heard, sample_rate=None)[0])
    return float(rep.get("samples_concealed", 0)) / max(1, n)


def plcmos_of(path: Path) -> float:
    """PLCMOS v2 (speechmos) of a file, at 16 kHz (clipped to [-1, 1]: resampling can overshoot, speechmos refuses)."""
    from csss_core.evaluation.quality import plcmos

    return plcmos(np.clip(read_audio(path)[0], -1.0, 1.0))


def ge2e_after_lock(heard: Path, original: Path, rep: dict[str, Any]) -> float | None:
    """GE2E cosine of what was heard after the identity locked (+1 s) to the sender's original clip."""
    if rep.get("seconds_audio_to_lock") is None:
        return None
    from resemblyzer import VoiceEncoder, preprocess_wav

    ve = VoiceEncoder(device="cpu", verbose=False)
    x, _ = read_audio(heard)
    after = x[int((rep["seconds_audio_to_lock"] + 1.0) * 16000):]
    if len(after) < 16000 * 3:
        return None
    orig = read_audio(original)[0]
    e1 = ve.embed_utterance(preprocess_wav(orig, source_sr=16000))
    e2 = ve.embed_utterance(preprocess_wav(after, source_sr=16000))
    return float(e1 @ e2)


def figures(res: dict[str, Any], a_in: Path, b_in: Path, with_ge2e: bool = True) -> dict[str, Any]:
    """The figures of one call (B heard the enrolled A; A heard B, learned live)."""
    ra, rb = res["a"], res["b"]
    b_corr, b_lag = envelope_alignment(a_in, res["b_heard"])
    a_corr, _ = envelope_alignment(b_in, res["a_heard"])
    out = {
        "b_lock_on_a_s": rb.get("seconds_call_start_to_lock"),
        "a_lock_on_b_s": ra.get("seconds_call_start_to_lock"),
        "b_concealed_pct": round(100 * concealed_fraction(rb, res["b_heard"]), 2),
        "a_concealed_pct": round(100 * concealed_fraction(ra, res["a_heard"]), 2),
        "b_frames_late": rb.get("frames_late"),
        "a_frames_late": ra.get("frames_late"),
        "b_frames_received": rb.get("frames_received"),
        "a_frames_received": ra.get("frames_received"),
        "b_mouth_to_ear_ms_first_last": mouth_to_ear_ms(res.get("a_timing"), res.get("b_timing"), b_lag),
        "env_corr_b_heard_a_sent": round(b_corr, 3),
        "env_corr_a_heard_b_sent": round(a_corr, 3),
        "b_heard_lag_s": b_lag,
        "plcmos_b_heard": round(plcmos_of(res["b_heard"]), 3),
        "plcmos_a_heard": round(plcmos_of(res["a_heard"]), 3),
        "net_loss_a_to_b": _loss(res["net"]["a_to_b"]),
        "net_loss_b_to_a": _loss(res["net"]["b_to_a"]),
        "net_delay_ms_a_to_b": res["net"]["a_to_b"].get("delay_ms"),
        "net_delay_ms_b_to_a": res["net"]["b_to_a"].get("delay_ms"),
    }
    if with_ge2e:
        g = ge2e_after_lock(res["b_heard"], a_in, rb)
        out["ge2e_b_heard_after_lock"] = None if g is None else round(g, 3)
    return out


def _loss(c: dict[str, Any]) -> float | None:
    return round(c["dropped"] / c["seen"], 4) if c.get("seen") else None


def voices(corpus_dir: str | None, work: Path) -> tuple[Path, Path, Path]:
    """A's clip (fest_ked), B's clip (flite_slt) and A's enrollment recording, as in tests/test_call.py."""
    from csss_core.corpus import Corpus, build_corpus, voice_by_name

    if corpus_dir:
        corpus = Corpus.load(corpus_dir)
    else:
        root = work / "corpus"
        build_corpus(root, [voice_by_name(v) for v in ("fest_ked", "flite_slt")], n_sentences=6, n_enroll=2)
        corpus = Corpus.load(root)

    def utts(spk: str) -> list[np.ndarray]:
        return [read_audio(corpus.path(u))[0] for u in corpus.utterances if u.speaker == spk]

    ked, slt = utts("fest_ked"), utts("flite_slt")
    paths = work / "a_in.wav", work / "b_in.wav", work / "a_enroll.wav"
    write_audio(paths[0], np.concatenate(ked * 2), 16000)
    write_audio(paths[1], np.concatenate(slt * 2), 16000)
    write_audio(paths[2], np.concatenate(ked[-2:]), 16000)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", help="a corpus with fest_ked and flite_slt (default: synthesize a small one)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--conditions", default="0:0,0:30,5:30,10:30", help="loss%%:jitter_ms, comma-separated")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="base one-way delay")
    ap.add_argument("--jitter-frames", type=int, default=None, help="csss call --jitter-frames (default: its own)")
    ap.add_argument("--no-engine", action="store_true", help="plain calls (network and jitter buffer only)")
    ap.add_argument("--json", help="write all figures here")
    ap.add_argument("--keep", help="keep the calls' files (logs, reports, what was heard) in this folder")
    a = ap.parse_args()
    why = unavailable()
    if why:
        raise SystemExit(f"cannot emulate the network here: {why}")
    conds = [(float(c.split(":")[0]) / 100, float(c.split(":")[1])) for c in a.conditions.split(",")]
    extra = ["--quiet"] + ([] if a.jitter_frames is None else ["--jitter-frames", str(a.jitter_frames)])
    extra += ["--no-engine"] if a.no_engine else []
    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(a.keep or d)
        work.mkdir(parents=True, exist_ok=True)
        a_in, b_in, enroll = voices(a.corpus, work)
        ref = {"plcmos_a_sent": round(plcmos_of(a_in), 3), "plcmos_b_sent": round(plcmos_of(b_in), 3)}
        for i, (loss, jitter) in enumerate(conds):
            cw = work / f"c{i}"
            cw.mkdir(exist_ok=True)
            with NetPair(*impairment(loss, jitter, a.delay_ms, seed=11 + i)) as net:
                res = call_across(net, a_in, b_in, enroll, cw, a.seconds, extra=extra)
            # the call ran its whole length: the first party to reach its duration hangs up and the other
            # hears its bye (which one is first is a race of a few ms; tests/test_call_faults.py asks the same)
            ends = (res["a"].get("ended_by"), res["b"].get("ended_by"))
            whole = all(res[p].get("seconds_connected", 0.0) >= a.seconds - 0.5 for p in ("a", "b"))
            ok = res["a_rc"] == 0 and res["b_rc"] == 0 and "duration" in ends and set(ends) <= {"duration", "peer-left"}
            ok = ok and whole
            row = {"loss": loss, "jitter_ms": jitter, "delay_ms": a.delay_ms, "ok": ok, **figures(res, a_in, b_in),
                   "ended_by": [res["a"].get("ended_by"), res["b"].get("ended_by")],
                   "rooms_after": res["health"]["rooms"], "wall_s": res["wall_s"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nsent clips: PLCMOS A {ref['plcmos_a_sent']}, B {ref['plcmos_b_sent']}; {a.seconds:.0f} s calls, "
          f"base delay {a.delay_ms:.0f} ms + U(0, jitter) each way, in order\n")
    print("| loss % | jitter ms | measured loss A>B / B>A % | B locks on A (enrolled) s | A locks on B (live) s "
          "| concealed % B / A | late frames B / A | mouth-to-ear A>B ms, 1-5 s / last 10 s "
          "| envelope corr. heard/sent B / A | PLCMOS B heard / A heard | GE2E cos B heard after lock |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ml = "/".join(f"{100 * v:.1f}" if v is not None else "-" for v in (r["net_loss_a_to_b"], r["net_loss_b_to_a"]))
        print(f"| {100 * r['loss']:.0f} | {r['jitter_ms']:.0f} | {ml} | {r['b_lock_on_a_s']} | {r['a_lock_on_b_s']} "
              f"| {r['b_concealed_pct']} / {r['a_concealed_pct']} | {r['b_frames_late']} / {r['a_frames_late']} "
              f"| {' / '.join(str(v) for v in r['b_mouth_to_ear_ms_first_last'])} "
              f"| {r['env_corr_b_heard_a_sent']} / {r['env_corr_a_heard_b_sent']} "
              f"| {r['plcmos_b_heard']} / {r['plcmos_a_heard']} | {r['ge2e_b_heard_after_lock']} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"reference": ref, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
