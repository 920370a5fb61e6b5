"""The call engine: the sender's and the receiver's streaming pipelines at the call's 48 kHz.

Sender (microphone -> network)::

    48 kHz -> 16 kHz -> converter (real voice -> pseudo-voice) -> hidden channel (sealed identity) -> 48 kHz

The real speaker's embedding is estimated while the user speaks (or taken from an enrollment
recording) and frozen after ``freeze_seconds`` of speech; from then on the sealed identity is
embedded, repeated, for the rest of the call. Before the freeze the converter uses the running
estimate (the average training voice before any speech), so the first second leaks more of the
real voice than the rest; an enrollment recording (``--enroll``) removes that phase.

Receiver (network -> speaker)::

    48 kHz -> 16 kHz -> extractor (lock onto the sealed identity)
                     -> before lock: the pseudo-voice passes through (delayed to the converter's latency)
                     -> after lock: converter (pseudo-voice -> real voice), cross-faded in -> 48 kHz

Both engines take and return float32 chunks of any length (the call uses 20 ms = 960 samples) and
return exactly as many samples as they get, so they can sit behind a real-time audio track.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from csss_core.anonymizer import Anonymizer, offsets_for_seed
from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioChunk
from csss_core.converter import FrameMapper
from csss_core.sealed_voice import (
    HIDDEN_CHANNEL,
    Extracted,
    extracted_from,
    extracted_from_state,
    identity_bits,
    reconstruction_mapper,
    unembed_stage,
)
from csss_core.speaker import MODEL_DIR, SpeakerEmbedding, SpeakerEstimator
from csss_core.stage import StreamingResampler
from csss_core.stego_ss import SSEmbedStage, SSExtractor, SSUnembedStage
from csss_core.vocoder import (
    HOP,
    LOOKAHEAD,
    POWER_DEBLUR,
    RECEIVER_VOICING,
    SENDER_VOICING,
    VocoderStage,
    stage_latency,
)

CALL_RATE = 48_000
BLOCK = 320  # 20 ms at 16 kHz: a multiple of the vocoder hop and of the hidden channel's bit length
UPDATE_EVERY = 50  # speech frames (0.5 s) between updates of the running speaker estimate
FLOOR_DB = -120.0


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS (``FLOOR_DB`` for silence)."""
    if len(x) == 0:
        return FLOOR_DB
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(FLOOR_DB, 20 * np.log10(r + 1e-12))


class _Fifo:
    """Sample FIFO that hands out exactly the requested count (zeros while it is short)."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._n = 0

    def push(self, x: np.ndarray) -> None:
        if len(x):
            self._parts.append(np.asarray(x, np.float32))
            self._n += len(x)

    def __len__(self) -> int:
        return self._n

    def pop(self, n: int) -> np.ndarray:
        if not self._parts:
            buf = np.zeros(0, np.float32)
        else:
            buf = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        if len(buf) < n:  # only at the start of a stream: the resampler and block delays
            buf = np.concatenate([np.zeros(n - len(buf), np.float32), buf])
        out, rest = buf[:n], buf[n:]
        self._parts = [rest] if len(rest) else []
        self._n = len(rest)
        return out


def _delay_line(n: int) -> _Fifo:
    """A FIFO primed with ``n`` zeros: push a chunk, pop as many samples, and they come out ``n`` late."""
    f = _Fifo()
    f.push(np.zeros(n, np.float32))
    return f


class _Blocks:
    """48 kHz in -> 16 kHz blocks of ``BLOCK`` -> (processing) -> 48 kHz out, same length as in."""

    def __init__(self) -> None:
        self._down = StreamingResampler(CALL_RATE, INTERNAL_SAMPLE_RATE)
        self._up = StreamingResampler(INTERNAL_SAMPLE_RATE, CALL_RATE)
        self._in = _Fifo()
        self._out = _Fifo()

    @property
    def latency_s(self) -> float:
        """Delay of the two resamplers plus the block buffering."""
        return self._down.latency_s + self._up.latency_s

    def run(self, x48: np.ndarray, block_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        x16 = self._down.process(AudioChunk(np.asarray(x48, np.float32), CALL_RATE)).samples
        self._in.push(x16)
        while len(self._in) >= BLOCK:
            y16 = block_fn(self._in.pop(BLOCK))
            self._out.push(self._up.process(AudioChunk(y16, INTERNAL_SAMPLE_RATE)).samples)
        return self._out.pop(len(x48))


_CHECKER: Anonymizer | None = None


def _exit_with_parent(parent: int) -> None:
    import os

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)  # the engine's process is gone (killed or crashed): do not linger as an orphan


def _checker_init(beta: float) -> None:
    global _CHECKER
    import os
    import threading

    import torch

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(1)
    _CHECKER = Anonymizer(beta=beta, asv_check=True)


def _checker_run(head: np.ndarray, source: np.ndarray, seed: int, order: list[int]
                 ) -> tuple[float | None, int, np.ndarray, int]:
    assert _CHECKER is not None
    src = SpeakerEmbedding.from_vector(source, _CHECKER.cb.k)
    return _CHECKER.choose_pseudo(head, src, seed, max_draws=len(order), order=order)


def _checker_ready() -> bool:
    return _CHECKER is not None


def start_asv_checker(beta: float) -> concurrent.futures.ProcessPoolExecutor:
    """A worker process with the ASV model loaded (the check renders seconds of audio: in this
    process it would hold the interpreter lock away from the real-time threads)."""
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_checker_init, initargs=(beta,))
    pool.submit(_checker_ready)  # load the models now, while the call connects
    return pool


@dataclass
class SenderStatus:
    """What the sender's status line shows."""

    speech_seconds: float = 0.0
    identity_frozen: bool = False
    embedding_since_s: float | None = None  # stream time at which the sealed identity started
    input_db: float = FLOOR_DB
    output_db: float = FLOOR_DB
    compute_ms: list[float] = field(default_factory=list)  # per 20 ms block


class SenderEngine:
    """Microphone audio (48 kHz) -> pseudo-voice carrying the sealed identity (48 kHz)."""

    CANDIDATES = 16  # pseudo-speaker draws considered when there is no enrollment
    ASV_CANDIDATES = 4  # of those, checked with the ASV model (farthest first) until one is far enough
    CHECK_FRAMES = 150  # speech frames (1.5 s) before the ASV check starts
    HEAD_SAMPLES = 3 * INTERNAL_SAMPLE_RATE  # input kept for the ASV check of the pseudo-voice

    def __init__(self, anonymizer: Anonymizer, key: bytes | None, seed: int, enroll: np.ndarray | None = None,
                 freeze_seconds: float = 3.0, device: str = "cpu", asv_check: bool = False) -> None:
        self.anon = anonymizer
        self.key = key
        self.seed = seed & 0xFFFFFFFF
        self.freeze_frames = int(freeze_seconds * INTERNAL_SAMPLE_RATE / HOP)
        self.offsets = offsets_for_seed(self.seed)
        cb = anonymizer.cb
        train = np.load(MODEL_DIR / "pseudo_gan_train_embeddings.npy").astype(np.float64)
        self._scale = train.std(axis=0) + 1e-6
        if enroll is not None:
            self.source = anonymizer.embed_speaker(enroll)
            _, self.draw_index, pseudo, _ = anonymizer.choose_pseudo(enroll, self.source, self.seed)
        else:
            self.source = SpeakerEmbedding.from_vector(train.mean(axis=0), cb.k)
            self.draw_index, pseudo = self._farthest(self.source)
        self._chosen = enroll is not None
        self._chosen_by_asv = enroll is not None  # the enrollment path ran the ASV check already
        self.redraws = 0
        self.pseudo = SpeakerEmbedding.from_vector(pseudo, cb.k)
        self._est = SpeakerEstimator(cb)
        self._voc = VocoderStage(self._mapper(), device, keep_frames=enroll is None)
        self._blocks = _Blocks()
        self._embed: SSEmbedStage | None = None
        self._n16 = 0
        self._since_update = 0
        self.status = SenderStatus()
        self._ready = enroll is not None  # enough speech seen to freeze the identity
        self._head: list[np.ndarray] = []  # the first seconds of input: the ASV check's real voice
        self._head_n = 0
        self._check: concurrent.futures.Future[tuple[float | None, int, np.ndarray, int]] | None = None
        self.asv_distance: float | None = None
        self._pool = start_asv_checker(anonymizer.beta) if asv_check and enroll is None else None

    def set_key(self, key: bytes) -> None:
        """The call key, once agreed (the identity is sealed only after it is known)."""
        self.key = key

    @property
    def latency_s(self) -> float:
        """Algorithmic delay: resamplers and the converter's look-ahead."""
        return self._blocks.latency_s + self._voc.latency_s

    def _by_distance(self, src: SpeakerEmbedding) -> list[tuple[float, int, np.ndarray]]:
        """The first human-range draws of the seed, farthest from ``src`` first (scaled per dimension)."""
        v0 = src.to_vector().astype(np.float64)
        out = []
        for n, (idx, v) in enumerate(self.anon.gan.candidates(self.seed)):
            out.append((float(np.linalg.norm((v.astype(np.float64) - v0) / self._scale)), idx, v))
            if n + 1 >= self.CANDIDATES:
                break
        if not out:
            raise RuntimeError("no pseudo-speaker inside the human range")
        return sorted(out, key=lambda t: -t[0])

    def _farthest(self, src: SpeakerEmbedding) -> tuple[int, np.ndarray]:
        """The draw farthest from ``src`` in embedding space: the streaming stand-in for the ASV
        check until there is speech to check (that needs seconds of speech and several renderings)."""
        _, idx, v = self._by_distance(src)[0]
        return idx, v

    def _mapper(self) -> FrameMapper:
        return FrameMapper(self.anon.cb, self.source, self.pseudo, self.offsets, self.anon.beta)

    def _freeze(self) -> None:
        if self.key is None:
            raise RuntimeError("sealing the identity needs the call key")
        self._voc.keep_frames = False
        self._voc.frames_seen = []
        self._voc.transform = self._mapper()
        start_bit = -(-self._n16 // HIDDEN_CHANNEL.bit_len)  # the first whole bit block from here
        bits = identity_bits(self.source.to_vector(), self.seed, self.draw_index, self.anon.beta, self.key, start_bit)
        self._embed = SSEmbedStage(bits, HIDDEN_CHANNEL)
        self.status.identity_frozen = True
        self.status.embedding_since_s = self._n16 / INTERNAL_SAMPLE_RATE

    def _learn(self) -> None:
        frames, self._voc.frames_seen = self._voc.frames_seen, []
        before = self._est.n_frames
        for fr in frames:
            self._est.update(fr)
        self._since_update += self._est.n_frames - before
        self.status.speech_seconds = self._est.n_frames * HOP / INTERNAL_SAMPLE_RATE
        if self._since_update >= UPDATE_EVERY or self._est.n_frames >= self.freeze_frames:
            self._since_update = 0
            try:
                self.source = self._est.estimate()
            except ValueError:
                return
            if not self._chosen:
                # the first estimate of the real voice: pick the pseudo-speaker far from it (once)
                self.draw_index, pseudo = self._farthest(self.source)
                self.pseudo = SpeakerEmbedding.from_vector(pseudo, self.anon.cb.k)
                self._chosen = True
            self._voc.transform = self._mapper()
            if self._pool is not None and self._check is None and self._est.n_frames >= self.CHECK_FRAMES:
                self._start_check()  # early, so that it is done by the time the identity freezes
            if self._est.n_frames >= self.freeze_frames:
                self._ready = True
                self._voc.keep_frames = False
                self._voc.frames_seen = []

    def _asv_choice(self) -> bool:
        """True once the pseudo-speaker is final. With ``asv_check``, the first seconds of speech are
        checked against candidate pseudo-voices in a worker process (as the file anonymizer does);
        the voice switches to the chosen one when the check is done."""
        if self._pool is None or self._chosen_by_asv:
            return True
        if self._check is None:
            self._start_check()
            return False
        if not self._check.done():
            return False
        dist, self.draw_index, pseudo, redraws = self._check.result()
        self.asv_distance, self.redraws = dist, redraws
        self._chosen_by_asv = True
        self.pseudo = SpeakerEmbedding.from_vector(pseudo, self.anon.cb.k)
        self._pool.shutdown(wait=False)
        return True

    def _start_check(self) -> None:
        assert self._pool is not None
        head = np.concatenate(self._head) if self._head else np.zeros(0, np.float32)
        self._head = []
        order = [idx for _, idx, _ in self._by_distance(self.source)[: self.ASV_CANDIDATES]]
        self._check = self._pool.submit(_checker_run, head, self.source.to_vector(), self.seed, order)

    def close(self) -> None:
        """Stop a pending background check."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _block(self, x16: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        y = self._voc.process(AudioChunk(x16, INTERNAL_SAMPLE_RATE)).samples
        if not self.status.identity_frozen:
            if not self._ready:
                if self._head_n < self.HEAD_SAMPLES:
                    self._head.append(x16)
                    self._head_n += len(x16)
                self._learn()
            if self._ready and self.key is not None and self._asv_choice():
                self._freeze()
        if self._embed is not None:
            y = self._embed.process(AudioChunk(y, INTERNAL_SAMPLE_RATE)).samples
        self._n16 += len(x16)
        self.status.compute_ms.append(1000 * (time.perf_counter() - t0))
        del self.status.compute_ms[:-500]
        return np.clip(y, -1.0, 1.0)

    def process(self, x48: np.ndarray) -> np.ndarray:
        """One chunk of microphone audio in, the same number of samples of pseudo-voice out."""
        self.status.input_db = level_db(x48)
        y = self._blocks.run(x48, self._block)
        self.status.output_db = level_db(y)
        return y


@dataclass
class ReceiverStatus:
    """What the receiver's status line shows."""

    locked: bool = False
    authenticated: bool = False
    seconds_to_lock: float | None = None  # seconds of received audio until the identity opened
    reason: str = "listening for the hidden identity"
    input_db: float = FLOOR_DB
    output_db: float = FLOOR_DB
    compute_ms: list[float] = field(default_factory=list)
    extracted: Extracted | None = None


class ReceiverEngine:
    """Received pseudo-voice (48 kHz) -> the sender's real voice once the identity locks (48 kHz).

    Before lock the pseudo-voice passes through; at lock the reconstruction is cross-faded in over
    ``crossfade_s`` after the converter has warmed up. Both paths have the converter's delay, so
    the switch does not jump in time.

    ``matched``: the receiver's analysis is matched to the sender's vocoder (:data:`RECEIVER_VOICING`,
    the de-blurring lifter and :data:`POWER_DEBLUR`, which adds one 10 ms hop of delay); False analyzes
    the pseudo-voice like natural speech (for comparison).
    """

    WARMUP = 3 * LOOKAHEAD  # samples the converter runs before its output is used

    def __init__(self, anonymizer: Anonymizer, key: bytes | None, crossfade_s: float = 0.2,
                 device: str = "cpu", matched: bool = True) -> None:
        self.anon = anonymizer
        self.matched = matched
        self.key = key
        self.device = device
        self._xfade = max(1, int(crossfade_s * INTERNAL_SAMPLE_RATE))
        self._extractor: SSExtractor | None = SSExtractor(key, HIDDEN_CHANNEL) if key is not None else None
        # the converter's delay (one hop more when matched: the power de-blur waits for the next frame); the
        # reconstruction path also waits one hidden-channel bit (the unembedding stage's delay)
        self._deblur = POWER_DEBLUR if matched else 0.0
        self._conv_latency = stage_latency(self._deblur)
        self._delay = _delay_line(self._conv_latency + HIDDEN_CHANNEL.bit_len)
        self._conv: VocoderStage | None = None
        self._unembed: SSUnembedStage | None = None
        self._conv_delay = _delay_line(HIDDEN_CHANNEL.bit_len)  # used when there is no unembedding
        self._ext_base = 0  # 16 kHz sample at which the extractor started
        self._conv_n = 0  # samples the converter has processed
        self._blocks = _Blocks()
        self.status = ReceiverStatus()
        self._in48 = 0  # 48 kHz samples received so far
        self._pos16 = 0  # 16 kHz samples handed to the blocks so far
        self._erased: list[tuple[int, int]] = []  # 16 kHz spans that were concealed, not received

    def set_key(self, key: bytes) -> None:
        """The call key, once agreed; extraction starts then (the pseudo-voice passes through before)."""
        self.key = key
        self._extractor = SSExtractor(key, HIDDEN_CHANNEL)
        self._ext_base = self._pos16

    @property
    def latency_s(self) -> float:
        """Algorithmic delay: resamplers, the converter's delay and one hidden-channel bit (the
        unembedding); the pass-through path is delayed to match."""
        return self._blocks.latency_s + (self._conv_latency + HIDDEN_CHANNEL.bit_len) / INTERNAL_SAMPLE_RATE

    def explain(self) -> str:
        """Why there is no lock (yet), in words: no payload seen, incomplete, or refused and why."""
        if self.status.locked:
            return self.status.reason
        if self._extractor is None:
            return "no call key yet"
        return extracted_from_state(self._extractor.receiver.state, None).reason

    def _lock(self) -> None:
        assert self._extractor is not None
        ext = extracted_from(self._extractor)
        self.status.extracted = ext
        self.status.reason = ext.reason
        try:
            mapper = reconstruction_mapper(ext, self.anon, matched=self.matched)
        except ValueError as exc:
            self.status.reason = str(exc)
            return
        self._conv = VocoderStage(mapper, self.device, voicing=RECEIVER_VOICING if self.matched else SENDER_VOICING,
                                  power_deblur=self._deblur)
        self._unembed = unembed_stage(ext, self._ext_base) if self.matched else None
        self.status.locked = True
        self.status.authenticated = ext.authenticated
        self.status.seconds_to_lock = ext.seconds_to_lock

    def _block(self, x16: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        self._delay.push(x16)
        passthrough = self._delay.pop(len(x16))
        if self._conv is None and self._extractor is not None:
            st = self._extractor.push(self._without_erasures(x16))
            if st.opened is not None:
                self._lock()
            elif st.failures:
                self.status.reason = st.failures[-1]
        y = passthrough
        if self._conv is not None:
            if self._unembed is not None:
                xin = self._unembed.process(x16, self._pos16)
            else:
                self._conv_delay.push(x16)
                xin = self._conv_delay.pop(len(x16))
            rec = self._conv.process(AudioChunk(xin, INTERNAL_SAMPLE_RATE)).samples
            if self._conv_n >= self.WARMUP + self._xfade:
                y = rec  # the cross-fade is over
            else:
                pos = self._conv_n + np.arange(len(x16)) - self.WARMUP
                w = np.clip(pos / self._xfade, 0.0, 1.0).astype(np.float32)
                w = 0.5 - 0.5 * np.cos(np.pi * w)  # raised-cosine cross-fade
                y = (1.0 - w) * passthrough + w * rec
            self._conv_n += len(x16)
        self._pos16 += len(x16)
        self.status.compute_ms.append(1000 * (time.perf_counter() - t0))
        del self.status.compute_ms[:-500]
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def _without_erasures(self, x16: np.ndarray) -> np.ndarray:
        """``x16`` with the concealed spans zeroed: the extractor reads them as erasures (soft bit 0), not
        as the confidently wrong chips of repeated audio."""
        start, end = self._pos16, self._pos16 + len(x16)
        self._erased = [(a, b) for a, b in self._erased if b > start]
        out = x16
        for a, b in self._erased:
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                if out is x16:
                    out = x16.copy()
                out[lo - start : hi - start] = 0.0
        return out

    def process(self, x48: np.ndarray, erased: bool = False) -> np.ndarray:
        """One chunk of received audio in, the same number of samples for the speaker out.

        ``erased``: the chunk is a concealment of lost packets (the call's gap filler), not received
        audio; it is played, but the hidden-payload extractor treats it as missing.
        """
        if erased:
            delay = round(self._blocks._down.latency_s * INTERNAL_SAMPLE_RATE)
            self._erased.append(((self._in48 // 3) + delay, ((self._in48 + len(x48)) // 3) + delay))
        self._in48 += len(x48)
        self.status.input_db = level_db(x48)
        y = self._blocks.run(x48, self._block)
        self.status.output_db = level_db(y)
        return y


class PassThroughEngine:
    """No processing (the latency benchmark's baseline, and ``csss call --no-engine``)."""

    latency_s = 0.0

    def __init__(self) -> None:
        self.status = ReceiverStatus(reason="pass-through (no engine)")

    def process(self, x48: np.ndarray, erased: bool = False) -> np.ndarray:
        """Return the input."""
        self.status.input_db = self.status.output_db = level_db(x48)
        return np.asarray(x48, np.float32)
