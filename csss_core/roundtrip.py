"""``csss roundtrip``: one file through exactly what a call does, with figures.

sender engine (pseudo-voice + sealed identity, 48 kHz, 20 ms chunks) -> real Opus (PyAV, aiortc's
settings) with optional packet loss -> receiver engine (extract, then reconstruct) -> figures: lock
time, GE2E cosine of the pseudo-voice and of the reconstruction to the original, PESQ-WB and SNR of
the reconstruction against the original (after the measured delay), DNSMOS OVRL when available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csss_core.anonymizer import Anonymizer
from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioError, resample
from csss_core.channel import opus_roundtrip
from csss_core.engine import CALL_RATE, ReceiverEngine, SenderEngine

CHUNK = 960


@dataclass
class RoundTrip:
    """The three signals at 16 kHz (aligned with the input) and what the receiver found."""

    anonymized: np.ndarray
    channel: np.ndarray
    reconstructed: np.ndarray
    delay_samples: int  # end-to-end delay removed from the outputs (16 kHz samples)
    seconds_to_lock: float | None
    authenticated: bool
    reason: str
    sender_frozen_at_s: float | None


def _run(engine: SenderEngine | ReceiverEngine, x: np.ndarray) -> np.ndarray:
    return np.concatenate([engine.process(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])


def estimate_delay(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """Lag (samples) that best aligns ``delayed`` with ``reference`` by envelope cross-correlation."""
    hop = 16
    def env(a: np.ndarray) -> np.ndarray:
        m = len(a) // hop
        return np.log10(np.mean(np.asarray(a[: m * hop], np.float64).reshape(m, hop) ** 2, axis=1) + 1e-8)

    er, ed = env(reference), env(delayed)
    er, ed = er - er.mean(), ed - ed.mean()
    best, best_lag = -np.inf, 0
    for lag in range(0, max_lag // hop + 1):
        n = min(len(er), len(ed) - lag)
        if n <= 0:
            break
        c = float(er[:n] @ ed[lag : lag + n]) / n
        if c > best:
            best, best_lag = c, lag
    coarse = best_lag * hop
    # refine on the waveform around the coarse lag
    lo, hi = max(0, coarse - hop), coarse + hop
    n = min(len(reference), len(delayed) - hi)
    if n <= 0:
        return coarse
    r = np.asarray(reference[:n], np.float64)
    scores = [float(r @ np.asarray(delayed[lag : lag + n], np.float64)) for lag in range(lo, hi + 1)]
    return lo + int(np.argmax(np.abs(scores)))


def roundtrip(x: np.ndarray, key: bytes, seed: int, bitrate: int = 96_000, loss: float = 0.0,
              enroll: bool = True, anonymizer: Anonymizer | None = None, matched: bool = True) -> RoundTrip:
    """Run 16 kHz speech ``x`` through the call's sender, the Opus channel and the receiver.

    ``enroll``: the file is its own enrollment (identity and ASV-checked pseudo-voice ready from the
    start, as ``csss anonymize`` does); otherwise the sender learns the voice as it goes, as in a call
    without ``--enroll`` (pseudo-voice chosen by embedding distance, no ASV check). ``matched``: see
    :class:`ReceiverEngine`.
    """
    if len(x) < INTERNAL_SAMPLE_RATE:
        raise AudioError("need at least 1 s of speech for a round trip")
    anon = anonymizer or Anonymizer(asv_check=enroll)
    x48 = resample(np.asarray(x, np.float32), INTERNAL_SAMPLE_RATE, CALL_RATE)
    sender = SenderEngine(anon, key, seed, enroll=x if enroll else None)
    y48 = _run(sender, x48)
    c48 = opus_roundtrip(y48, CALL_RATE, bitrate, loss=loss, seed=seed)
    receiver = ReceiverEngine(Anonymizer(asv_check=False, codebook=anon.cb, gan=anon.gan), key, matched=matched)
    z48 = _run(receiver, c48)
    y, c, z = (resample(s, CALL_RATE, INTERNAL_SAMPLE_RATE)[: len(x)] for s in (y48, c48, z48))
    d = estimate_delay(x, z if receiver.status.locked else c, max_lag=int(0.3 * INTERNAL_SAMPLE_RATE))

    def shift(s: np.ndarray) -> np.ndarray:
        return np.concatenate([s[d:], np.zeros(d, np.float32)]).astype(np.float32)

    st = receiver.status
    return RoundTrip(shift(y), shift(c), shift(z), d, st.seconds_to_lock, st.authenticated, receiver.explain(),
                     sender.status.embedding_since_s)


def figures(x: np.ndarray, rt: RoundTrip, quality: bool = True) -> dict[str, float | str | None]:
    """The round trip's figures (GE2E cosines, PESQ-WB, SNR, DNSMOS) on the part after the lock."""
    from csss_core.evaluation.attackers import GE2EAttacker
    from csss_core.evaluation.metrics import pesq_wb, snr_db

    ge2e = GE2EAttacker()
    out: dict[str, float | str | None] = {
        "seconds_to_lock": rt.seconds_to_lock,
        "authenticated": str(rt.authenticated),
        "delay_ms": round(1000 * rt.delay_samples / INTERNAL_SAMPLE_RATE, 1),
    }
    e = ge2e.embed(x)
    out["ge2e_cos_original_vs_anonymized"] = round(float(e @ ge2e.embed(rt.anonymized)), 3)
    if rt.seconds_to_lock is None:
        out["reason"] = rt.reason
        return out
    start = int((rt.seconds_to_lock + 0.5) * INTERNAL_SAMPLE_RATE)
    if len(x) - start < INTERNAL_SAMPLE_RATE:
        out["reason"] = "less than 1 s of audio after the lock: no reconstruction figures"
        return out
    xa, za, ya = x[start:], rt.reconstructed[start:], rt.anonymized[start:]
    ea = ge2e.embed(xa)
    out["seconds_after_lock"] = round(len(xa) / INTERNAL_SAMPLE_RATE, 2)
    out["ge2e_cos_original_vs_anonymized_after_lock"] = round(float(ea @ ge2e.embed(ya)), 3)
    out["ge2e_cos_original_vs_reconstructed_after_lock"] = round(float(ea @ ge2e.embed(za)), 3)
    out["pesq_wb_reconstructed"] = round(pesq_wb(xa, za), 3)
    out["snr_db_reconstructed"] = round(snr_db(xa, za), 2)
    if quality:
        try:
            from csss_core.evaluation.quality import dnsmos
        except ImportError:  # the eval extras are not installed
            return out
        out["dnsmos_ovrl_original"] = round(dnsmos(xa)["ovrl"], 3)
        out["dnsmos_ovrl_reconstructed"] = round(dnsmos(za)["ovrl"], 3)
    return out


class CSSSReconSystem:
    """Evaluation system "csss-recon": the receiver's reconstruction after the Opus 96 kbit/s channel.

    Per trial utterance: the sender anonymizes it with the sealed identity (the utterance is its own
    enrollment, as ``csss anonymize`` does), the audio crosses real Opus at aiortc's settings, and the
    receiver extracts the identity and reconstructs. A payload copy takes 2.9 s, often longer than a
    corpus utterance, and the receiver may start mid-copy, so the utterance is played repeatedly,
    standing in for the earlier speech of a call, and the output is the reconstruction of its last
    repetition (time-aligned, after the lock). A trial whose payload does not lock yields the received
    pseudo-voice and is counted.
    """

    name = "csss-recon"
    seeded = True
    MIN_SECONDS = 10.0  # of audio before the last repetition (one payload copy is 2.9 s; margin for noisy copies)

    def __init__(self) -> None:
        from csss_core.anonymizer import default_anonymizer
        from csss_core.payload import new_key

        self._anon = default_anonymizer()
        self._key = new_key()
        self._locks: list[float | None] = []

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Reconstruction of ``wav`` after anonymize -> Opus 96 kbit/s -> extract."""
        n = len(wav)
        if n == 0:
            raise AudioError("empty audio")
        reps = int(np.ceil(self.MIN_SECONDS * INTERNAL_SAMPLE_RATE / n)) + 1
        x = np.concatenate([np.asarray(wav, np.float32)] * reps)
        rt = roundtrip(x, self._key, seed, anonymizer=self._anon)
        last = len(x) - n
        locked = rt.seconds_to_lock is not None and rt.seconds_to_lock * INTERNAL_SAMPLE_RATE <= last
        self._locks.append(rt.seconds_to_lock if locked else None)
        return (rt.reconstructed if locked else rt.channel)[last:]

    def report(self, out_dir: object) -> dict[str, object]:
        """Lock statistics for the evaluation report."""
        got = [t for t in self._locks if t is not None]
        return {
            "trials": len(self._locks),
            "fraction of trials whose identity locked before the evaluated repetition": round(
                len(got) / max(1, len(self._locks)), 3),
            "median seconds to lock": round(float(np.median(got)), 2) if got else None,
        }
