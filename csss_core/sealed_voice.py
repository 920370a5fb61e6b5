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
from dataclasses import dataclass, replace

import numpy as np

from csss_core.anonymizer import Anonymizer, AnonymizeResult, offsets_for_seed
from csss_core.audio import INTERNAL_SAMPLE_RATE
from csss_core.converter import FrameMapper, convert, receiver_lifter
from csss_core.payload import ReceiverState, SpeakerPayload, embedding_grid, frame_bits, seal
from csss_core.speaker import SpeakerEmbedding
from csss_core.stego_ss import SSConfig, SSExtractor, SSUnembedStage, embed, extract_ss
from csss_core.vocoder import POWER_DEBLUR, RECEIVER_VOICING, Voicing

# 16 chips per bit at 16 kHz: 1000 bit/s; with the compact payload one frame lasts 2.9 s.
# The first two copies of the frame are an acquisition preamble with the host's projection on the
# carrier fully removed (ISS lam 1, carrier at -24 dB: no host interference, a receiver listening from
# the start locks after one copy). After it the carrier is quiet (-32 dB) and leaves the host alone (lam 0);
# every third copy is a *beacon* at -24 dB that removes 60 % of the projection (lam 0.6), for a receiver
# that missed the preamble. Everything after the preamble can be undone exactly once the bits are known
# (SSUnembedStage), so the receiver reconstructs from the pseudo-voice as the converter made it.
# ``benchmarks/receiver_design.py --part schedule`` (8 voices x 45 s through Opus 96 kbit/s, one run):
# reconstruction GE2E cosine median 0.900 with this schedule, 0.895 with lam-1 beacons (which the receiver
# cannot undo: a worse reconstruction for the 2.9 s of each beacon), 0.884 with lam 0.6 at -24 dB in every
# copy after the preamble (ISS_CHANNEL, shipped before), 0.905 with no hidden channel in the audio at all;
# lock from the start 2.9 s in all; a receiver joining after the preamble locks after median 7.4 s / max
# 11.6 s (lam-1 beacons 6.5 / 9.9 s, ISS_CHANNEL 2.9 / 5.8 s). Earlier (lam 1 throughout: 0.75, lam 0.8:
# 0.83) the projection removal cost the reconstruction most.
ISS_CHANNEL = SSConfig(bit_len=16, strength_db=-24.0, lam=0.6, acquire_copies=2, acquire_lam=1.0)
QUIET_BEACON_CHANNEL = replace(ISS_CHANNEL, strength_db=-32.0, lam=0.0, acquire_strength_db=-24.0, beacon_every=3,
                               beacon_lam=0.6)
# The carrier in a band of its own, 6-7.7 kHz, where speech has little energy: taking the host's projection
# out there (the lam-1 preamble) costs little, and the extractor weights each soft bit by the block's level
# in that band (``band_weight``: vowels, whose band the carrier has to itself, count much; fricatives, which
# fill it, little), so a carrier 9 dB quieter in the preamble (4 dB after it) than the old one opens from its
# first copy for most voices, and everything after the preamble (lam 0, -36 dB) comes out exactly at the
# receiver. No beacons: every copy is as
# decodable as another. ``benchmarks/stego_table.py --voices 15 --seconds 30 --dnsmos --no-nets`` (one run,
# side by side with QUIET_BEACON_CHANNEL): SNR 31.3 vs 23.0 dB, 13/15 open within 3 s through Opus 96k (all
# by 5.8 s; previous 15/15), 13/15 vs 5/15 through Opus 32k; ``receiver_design.py --part schedule``:
# reconstruction 0.911 vs 0.904 (0.910 with no channel), late joiners median 3.8 s vs 8.2 s. Since the
# extractor holds an inactive phase's bits and the receiver takes missed headers from its header book (same
# carrier): 14/15 within 3 s at 96k (max 3.2 s) and 14/15 through 32k; ``benchmarks/stego_lock.py`` (15 voices
# x 3 payloads) 42/45 within 3 s at 96k, 45/45 within 6 s. With the LDPC body code (payload version 2): 45/45
# within 3 s at 96k with and without 5 % loss, 42/45 in a room of RT60 0.4 s, 15/15 through 32k (median 5.8 s).
BAND_CHANNEL = SSConfig(bit_len=16, band=(6000.0, 7700.0), band_weight=True, active_phases=8, strength_db=-36.0,
                        lam=0.0, acquire_copies=2, acquire_lam=1.0, acquire_strength_db=-33.0, floor_dbfs=-58.0)
HIDDEN_CHANNEL = BAND_CHANNEL
# seed, draw index, beta x 100, and the sender's stream position (in hidden-channel bits, modulo 2^16,
# i.e. 65.5 s) where this payload's embedding began: the receiver locates the acquisition preamble with it
EXTRA = struct.Struct(">IBBH")


def frame_seconds(result: AnonymizeResult, key: bytes | None) -> float:
    """Seconds of audio one copy of the payload frame occupies."""
    return len(_bits(result, key)) * HIDDEN_CHANNEL.bit_len / INTERNAL_SAMPLE_RATE


def identity_bits(source: np.ndarray, seed: int, draw_index: int, beta: float, key: bytes | None,
                  start_bit: int = 0) -> np.ndarray:
    """The bit frame of the sealed identity: the real embedding plus what undoes the conversion.

    ``start_bit``: the sender's stream position, in hidden-channel bits, where embedding this frame
    begins (0 for a file).
    """
    extra = EXTRA.pack(seed & 0xFFFFFFFF, draw_index, int(round(beta * 100)), start_bit & 0xFFFF)
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
    start_bit: int = 0  # the sender's stream position (bits, modulo 2^16) where this payload's embedding began

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
    return extracted_from(extract_ss(y, key, HIDDEN_CHANNEL))


def extracted_from(ex: SSExtractor) -> Extracted:
    """What an extractor has found, with where its payload's frame lies (for taking the channel out)."""
    return extracted_from_state(ex.receiver.state, ex.seconds_to_lock, ex.frame_origin, ex.frame_polarity)


def reconstruction_mapper(ext: Extracted, anonymizer: Anonymizer, matched: bool = True) -> FrameMapper:
    """The frame transform that turns the pseudo-voice back into the real speaker's voice.

    ``matched``: first undo the envelope blur of the sender's vocoder (:func:`receiver_lifter`); the
    frames should then come from an analysis with :data:`RECEIVER_VOICING` and the power de-blurred
    (:data:`POWER_DEBLUR`).
    """
    if ext.embedding is None or ext.seed is None or ext.draw_index is None or not ext.beta:
        raise ValueError(f"cannot reconstruct: {ext.reason}")
    cb = anonymizer.cb
    real = SpeakerEmbedding.from_vector(ext.embedding, cb.k)
    pseudo = SpeakerEmbedding.from_vector(anonymizer.gan.draw(ext.seed, ext.draw_index), cb.k)
    return FrameMapper(cb, pseudo, real, offsets_for_seed(ext.seed).inverse(), beta=1.0 / ext.beta,
                       lifter=receiver_lifter() if matched else None, undo=True)


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
    seed, draw, beta100, start_bit = EXTRA.unpack(pl.extra)
    ok = "ok" if state.authenticated else "ok (not authenticated: no key)"
    return Extracted(True, state.authenticated, pl.embedding, seed, draw, beta100 / 100.0, seconds_to_lock, ok,
                     state.opened.data, frame_origin, polarity, start_bit)


def unembed_stage(ext: Extracted, origin_offset: int = 0) -> SSUnembedStage | None:
    """The stage that removes the hidden channel from the audio ``ext`` was extracted from, or None when
    the extraction did not say where the frame lies. ``origin_offset``: where the extractor's first
    sample lies on the caller's timeline, whose start must lie less than one frame after the start of
    the sender's stream (true of a call's receiver and of a whole file; otherwise the acquisition
    preamble is misplaced: harmless there, only less is restored).
    """
    if ext.sealed is None or ext.frame_origin is None or HIDDEN_CHANNEL.lam >= 1.0:
        return None
    bits = frame_bits(ext.sealed)
    n = HIDDEN_CHANNEL.bit_len
    origin = ext.frame_origin + origin_offset
    # copies start at (sender's stream start) + (start_bit + j * frame) * n on this timeline, and the
    # stream started within [0, frame * n) of it: that fixes where this payload's embedding began
    frame = len(bits) * n
    first = ext.start_bit * n + (origin - ext.start_bit * n) % frame
    return SSUnembedStage(bits, origin, HIDDEN_CHANNEL, ext.polarity, payload_start=first)


def remove_hidden_channel(y: np.ndarray, ext: Extracted) -> np.ndarray:
    """``y`` with the hidden channel taken out (the pseudo-voice as the sender's converter made it, up to
    the channel's own noise); ``y`` unchanged when that is not possible."""
    st = unembed_stage(ext)
    if st is None:
        return np.asarray(y, np.float32)
    n = st.latency_samples
    return st.process(np.concatenate([np.asarray(y, np.float32), np.zeros(n, np.float32)]), 0)[n:]


def convert_back(x: np.ndarray, mapper: FrameMapper, voicing: Voicing = RECEIVER_VOICING) -> np.ndarray:
    """Pseudo-voice without the hidden channel -> the real voice, analyzed as the receiver does (its voicing,
    :data:`POWER_DEBLUR`) with ``mapper`` (:func:`reconstruction_mapper`); offline, time-aligned with ``x``."""
    return convert(x, mapper, voicing=voicing, power_deblur=POWER_DEBLUR)


def reconstruct(y: np.ndarray, ext: Extracted, anonymizer: Anonymizer) -> np.ndarray:
    """Convert the received pseudo-voice back into the real speaker's voice (hidden channel removed first)."""
    return convert_back(remove_hidden_channel(y, ext), reconstruction_mapper(ext, anonymizer))
