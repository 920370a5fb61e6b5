"""The sender's anonymizer and the speaker-embedding entry points (``csss anonymize``, ``embed-speaker``).

anonymize(x, seed): estimate the real speaker's embedding from ``x``; draw the call's pseudo-speaker
from the GAN with ``seed`` (redrawn until it is in the human range and, by the GE2E ASV model, at
least ``min_asv_distance`` in cosine distance from the real voice); draw the per-call prosody
offsets from ``seed``; convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioError
from csss_core.converter import FrameMapper, Offsets, convert
from csss_core.pseudo_speaker import PseudoSpeakerModel, load_pseudo_speaker_model
from csss_core.speaker import MODEL_DIR, Codebook, SpeakerEmbedding, SpeakerEstimator, load_codebook
from csss_core.vocoder import analyze

CHECK_SECONDS = 4.0  # audio rendered in a candidate pseudo-voice for the ASV distance check


def offsets_for_seed(seed: int) -> Offsets:
    """The per-call prosody offsets of ``seed`` (the receiver derives them the same way)."""
    return Offsets.draw(np.random.default_rng([seed, 0x0FF5E7]))


@dataclass(frozen=True)
class AnonymizeResult:
    """The pseudo-voice audio and what produced it (the first two travel hidden)."""

    audio: np.ndarray
    source: np.ndarray  # the real speaker's embedding
    pseudo: np.ndarray  # the call's pseudo-speaker embedding
    offsets: Offsets
    seed: int
    draw_index: int  # which GAN draw of ``seed`` is the pseudo-speaker (the receiver regenerates it)
    redraws: int
    asv_distance: float | None


class Anonymizer:
    """Loaded models and the conversion settings."""

    def __init__(self, beta: float = 1.0, min_asv_distance: float = 0.3, asv_check: bool = True,
                 codebook: Codebook | None = None, gan: PseudoSpeakerModel | None = None) -> None:
        self.cb = codebook or load_codebook()
        self.gan = gan or load_pseudo_speaker_model()
        if self.gan.dim != self.cb.dim:
            raise RuntimeError(f"generator makes {self.gan.dim}-d embeddings, codebook needs {self.cb.dim}")
        self.beta = beta
        self.min_asv_distance = min_asv_distance
        self.asv_check = asv_check
        self._asv = None
        if asv_check:
            from resemblyzer import VoiceEncoder

            self._asv = VoiceEncoder(device="cpu", verbose=False)

    def embed_speaker(self, x: np.ndarray) -> SpeakerEmbedding:
        """The real speaker's embedding estimated from 16 kHz speech."""
        if len(x) < INTERNAL_SAMPLE_RATE // 4:
            raise AudioError("need at least 0.25 s of audio to estimate a speaker")
        est = SpeakerEstimator(self.cb)
        est.update(analyze(x))
        if est.n_frames < 20:
            raise AudioError("no speech found (silent or too quiet input)")
        try:
            return est.estimate()
        except ValueError as exc:
            raise AudioError(str(exc)) from exc

    def _asv_embed(self, x: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        assert self._asv is not None
        w = preprocess_wav(np.asarray(x, np.float32), source_sr=INTERNAL_SAMPLE_RATE)
        if len(w) < INTERNAL_SAMPLE_RATE // 2:
            w = np.asarray(x, np.float32)
        e = self._asv.embed_utterance(w)
        return e / (np.linalg.norm(e) + 1e-12)

    def choose_pseudo(self, x: np.ndarray, src: SpeakerEmbedding, seed: int, max_draws: int = 16,
                      order: list[int] | None = None) -> tuple[float | None, int, np.ndarray, int]:
        """The pseudo-speaker of ``seed`` for the speaker of ``x`` (whose embedding is ``src``).

        Candidates are the seed's human-range draws in order, or the draws listed in ``order``.
        Returns (ASV cosine distance or None when unchecked, draw index, embedding, redraws).
        """
        offsets = offsets_for_seed(seed)
        head = x[: int(CHECK_SECONDS * INTERNAL_SAMPLE_RATE)]
        real_asv = self._asv_embed(head) if self._asv is not None else None
        chosen: tuple[float | None, int, np.ndarray] | None = None
        best: tuple[float, int, np.ndarray] | None = None
        redraws = 0
        cands = self.gan.candidates(seed, max_draws=64)
        if order is not None:
            cands = iter([(i, self.gan.draw(seed, i)) for i in order])
        for idx, v in cands:
            if real_asv is None:
                chosen = (None, idx, v)
                break
            tgt_c = SpeakerEmbedding.from_vector(v, self.cb.k)
            y_c = convert(head, FrameMapper(self.cb, src, tgt_c, offsets, self.beta))
            d = 1.0 - float(real_asv @ self._asv_embed(y_c))
            if best is None or d > best[0]:
                best = (d, idx, v)
            if d >= self.min_asv_distance:
                chosen = (d, idx, v)
                break
            redraws += 1
            if redraws >= max_draws:
                break
        if chosen is None:
            if best is None:
                raise RuntimeError("no pseudo-speaker inside the human range")
            chosen = best  # the farthest candidate; redraws == max_draws marks it
        return chosen[0], chosen[1], chosen[2], redraws

    def anonymize(self, x: np.ndarray, seed: int) -> AnonymizeResult:
        """Convert ``x`` into the pseudo-voice chosen by ``seed``."""
        src = self.embed_speaker(x)
        offsets = offsets_for_seed(seed)
        dist, draw_index, pseudo, redraws = self.choose_pseudo(x, src, seed)
        tgt = SpeakerEmbedding.from_vector(pseudo, self.cb.k)
        y = convert(x, FrameMapper(self.cb, src, tgt, offsets, self.beta))
        return AnonymizeResult(y, src.to_vector(), pseudo, offsets, seed, draw_index, redraws, dist)


@cache
def default_anonymizer() -> Anonymizer:
    """The shared anonymizer (models loaded once per process)."""
    return Anonymizer()


class CSSSSystem:
    """The CSSS anonymizer as an evaluation system."""

    name = "csss"
    seeded = True

    def __init__(self) -> None:
        self._anon = default_anonymizer()
        self._draws: list[int] = []
        self._dists: list[float] = []

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Anonymize with the pseudo-speaker of ``seed``."""
        r = self._anon.anonymize(wav, seed)
        self._draws.append(r.redraws)
        if r.asv_distance is not None:
            self._dists.append(r.asv_distance)
        return r.audio

    def report(self, out_dir: Path) -> dict[str, object]:
        """Redraw statistics and the GAN sample plot for the evaluation report."""
        from csss_core.pseudo_speaker import plot_samples

        real = np.load(MODEL_DIR / "pseudo_gan_train_embeddings.npy").astype(np.float64)
        plot_samples(self._anon.gan, real, out_dir / "gan_samples.png")
        draws = np.array(self._draws) if self._draws else np.zeros(1)
        return {
            "images": ["gan_samples.png"],
            "pseudo-voices drawn": int(len(self._draws)),
            "fraction of pseudo-voices needing a redraw": round(float(np.mean(draws > 0)), 3),
            "mean redraws per pseudo-voice": round(float(np.mean(draws)), 2),
            "median ASV cosine distance pseudo vs real (GE2E, first 4 s)": round(float(np.median(self._dists)), 3)
            if self._dists else None,
        }
