"""The file-level round trip: pseudo-voice with the sealed identity hidden inside, and its inverse.

Sender: :func:`hide_identity` puts the real speaker's embedding, plus the pseudo-speaker's seed, draw
index and the conversion strength (what the receiver needs to undo the conversion), in a sealed
payload (:mod:`csss_core.payload`) and embeds its repeated bit frame for the whole length of the
pseudo-voice audio. The carrier is the spread-spectrum baseline (:mod:`csss_core.stego_ss`) at
1000 bit/s (the paper's U-Net/GCN networks, :mod:`csss_core.stego_net`, lock more slowly).

Receiver: :func:`extract_identity` locks onto the frame at any offset and opens it with the call key;
:func:`reconstruct` regenerates the pseudo-speaker from its seed and draw and converts back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from csss_core.anonymizer import Anonymizer, AnonymizeResult, offsets_for_seed
from csss_core.audio import INTERNAL_SAMPLE_RATE
from csss_core.converter import FrameMapper, convert, receiver_lifter
from csss_core.payload import ReceiverState, SpeakerPayload, embedding_grid, frame_bits, seal
from csss_core.speaker import SpeakerEmbedding
from csss_core.stego_ss import SSConfig, SSExtractor, SSUnembedStage, embed
from csss_core.vocoder import RECEIVER_VOICING

# 16 chips per bit at 16 kHz: 1000 bit/s; with the compact payload one frame lasts about 2.9 s.
# lam 0.8: the sender removes 80 % of the host's projection on the carrier, not all of it, so that the
# receiver can undo the embedding exactly once it knows the bits (SSUnembedStage); the carrier's host
# interference is still mostly cancelled (lock times through Opus unchanged from lam 1 in a side-by-side
# run, 24 trials: median 4.3 s both; lam 0.6 was slower and missed 3 locks)
HIDDEN_CHANNEL = SSConfig(bit_len=16, strength_db=-26.0, lam=0.8)
EXTRA = struct.Struct(">IBB")  # seed, draw index, beta x 100


def frame_seconds(result: AnonymizeResult, key: bytes | None) -> float:
    """Seconds of audio one copy of the payload frame occupies."""
    return len(_bits(result, key)) * HIDDEN_CHANNEL.bit_len / INTERNAL_SAMPLE_RATE


def identity_bits(source: np.ndarray, seed: int, draw_index: int, beta: float, key: bytes | None) -> np.ndarray:
    """The bit frame of the sealed identity: the real embedding plus what undoes the conversion."""
    extra = EXTRA.pack(seed & 0xFFFFFFFF, draw_index, int(round(beta * 100)))
    compact = np.asarray(source).size == embedding_grid().dim
    return frame_bits(seal(SpeakerPayload(source, extra, compact=compact), key))


def _bits(result: AnonymizeResult, key: bytes | None, beta: float = 1.0) -> np.ndarray:
    return identity_bits(result.source, result.seed, result.draw_index, beta, key)


def hide_identity(result: AnonymizeResult, key: bytes | None, beta: float = 1.0) -> np.ndarray:
    """The pseudo-voice audio with the sealed identity embedded (repeated for its whole length)."""
    return embed(result.audio, _bits(result, key, beta), HIDDEN_CHANNEL)


@dataclass(frozen=True)
class Extracted:
    """What the receiver recovered (``embedding`` is None unless a payload opened)."""

    found: bool
    authenticated: bool
    embedding: np.ndarray | None
    seed: int | None
    draw_index: int | None
    beta: float | None
    seconds_to_lock: float | None
    reason: str
    sealed: bytes | None = None  # the opened payload's sealed bytes (their bit frame is what was embedded)
    frame_origin: int | None = None  # a 16 kHz sample of the input where a copy of that frame starts
    polarity: float = 1.0

    def to_json(self) -> dict[str, object]:
        """The ``csss extract`` object."""
        return {
            "found": self.found,
            "authenticated": self.authenticated,
            "embedding": None if self.embedding is None else [round(float(v), 6) for v in self.embedding],
            "seconds_to_lock": None if self.seconds_to_lock is None else round(self.seconds_to_lock, 3),
            "reason": self.reason,
        }


def extract_identity(y: np.ndarray, key: bytes | None) -> Extracted:
    """Stream ``y`` (16 kHz) through the extractor until the payload opens or the audio ends."""
    ex = SSExtractor(key, HIDDEN_CHANNEL)
    state = ex.receiver.state
    step = 1600  # 0.1 s: the lock time is known to this resolution
    for i in range(0, len(y), step):
        state = ex.push(y[i : i + step])
        if state.opened is not None:
            break
    else:
        state = ex.flush()
    return extracted_from_state(state, ex.seconds_to_lock, ex.frame_origin, ex.receiver.polarity)


def reconstruction_mapper(ext: Extracted, anonymizer: Anonymizer, matched: bool = True) -> FrameMapper:
    """The frame transform that turns the pseudo-voice back into the real speaker's voice.

    ``matched``: first undo the envelope blur of the sender's vocoder (:func:`receiver_lifter`); the
    frames should then come from an analysis with :data:`RECEIVER_VOICING`.
    """
    if ext.embedding is None or ext.seed is None or ext.draw_index is None or not ext.beta:
        raise ValueError(f"cannot reconstruct: {ext.reason}")
    cb = anonymizer.cb
    real = SpeakerEmbedding.from_vector(ext.embedding, cb.k)
    pseudo = SpeakerEmbedding.from_vector(anonymizer.gan.draw(ext.seed, ext.draw_index), cb.k)
    return FrameMapper(cb, pseudo, real, offsets_for_seed(ext.seed).inverse(), beta=1.0 / ext.beta,
                       lifter=receiver_lifter() if matched else None)


def extracted_from_state(state: ReceiverState, seconds_to_lock: float | None, frame_origin: int | None = None,
                         polarity: float = 1.0) -> Extracted:
    """Interpret a receiver state as :class:`Extracted` (``frame_origin``: from the extractor)."""
    if state.opened is None:
        if state.found:
            reason = state.failures[-1] if state.failures else "payload incomplete (audio too short to lock)"
        else:
            reason = "no hidden payload found"
        return Extracted(state.found, False, None, None, None, None, None, reason)
    pl = state.opened.payload
    if len(pl.extra) != EXTRA.size:
        return Extracted(True, state.authenticated, pl.embedding, None, None, None, seconds_to_lock,
                         "payload lacks the conversion data")
    seed, draw, beta100 = EXTRA.unpack(pl.extra)
    ok = "ok" if state.authenticated else "ok (not authenticated: no key)"
    return Extracted(True, state.authenticated, pl.embedding, seed, draw, beta100 / 100.0, seconds_to_lock, ok,
                     state.opened.data, frame_origin, polarity)


def unembed_stage(ext: Extracted, origin_offset: int = 0) -> SSUnembedStage | None:
    """The stage that removes the hidden channel from the audio ``ext`` was extracted from, or None when
    the extraction did not say where the frame lies. ``origin_offset``: where the extractor's first
    sample lies on the caller's timeline."""
    if ext.sealed is None or ext.frame_origin is None or HIDDEN_CHANNEL.lam >= 1.0:
        return None
    return SSUnembedStage(frame_bits(ext.sealed), ext.frame_origin + origin_offset, HIDDEN_CHANNEL, ext.polarity)


def remove_hidden_channel(y: np.ndarray, ext: Extracted) -> np.ndarray:
    """``y`` with the hidden channel taken out (the pseudo-voice as the sender's converter made it, up to
    the channel's own noise); ``y`` unchanged when that is not possible."""
    st = unembed_stage(ext)
    if st is None:
        return np.asarray(y, np.float32)
    n = st.latency_samples
    return st.process(np.concatenate([np.asarray(y, np.float32), np.zeros(n, np.float32)]), 0)[n:]


def reconstruct(y: np.ndarray, ext: Extracted, anonymizer: Anonymizer) -> np.ndarray:
    """Convert the received pseudo-voice back into the real speaker's voice (hidden channel removed first)."""
    return convert(remove_hidden_channel(y, ext), reconstruction_mapper(ext, anonymizer), voicing=RECEIVER_VOICING)
