"""Classical baseline for the hidden channel: improved spread spectrum (ISS, Malvar & Florencio 2003).

Each bit occupies one block of ``bit_len`` samples. A fixed band-limited pseudo-noise carrier ``p``
(public; privacy rests on the payload's AEAD, not on the carrier) is added with the bit's sign and
an amplitude that follows the host's level, and the host's own projection on ``p`` is removed, so
the receiver's correlation sees the bit and the channel noise but not the speech. The bits are the
payload's repeated frame (:func:`csss_core.payload.frame_bits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt, sosfiltfilt

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioChunk
from csss_core.payload import MAX_BODY, PayloadReceiver, ReceiverState, frame_bits, frame_len


@dataclass(frozen=True)
class SSConfig:
    """Spread-spectrum parameters (samples at 16 kHz, Hz, dB)."""

    bit_len: int = 160  # 10 ms per bit: 100 bit/s
    band: tuple[float, float] = (1500.0, 7000.0)
    strength_db: float = -28.0  # carrier RMS relative to the host block's RMS
    floor_dbfs: float = -55.0  # carrier level in silence
    lam: float = 1.0  # fraction of the host's projection removed (ISS)
    # acquisition preamble: the first ``acquire_copies`` copies of the frame from the start of the stream
    # use ``acquire_lam`` (1: the host's projection fully removed, the fastest lock; the receiver cannot
    # restore it there); afterwards ``lam``, which the receiver can undo
    acquire_copies: int = 0
    acquire_lam: float = 1.0
    # the preamble's carrier level (None: ``strength_db``); and beacons: every ``beacon_every``-th copy
    # after the preamble is embedded at the preamble's level with ``beacon_lam`` (None: ``acquire_lam``),
    # so that a receiver that missed the preamble locks too (0: no beacons)
    acquire_strength_db: float | None = None
    beacon_every: int = 0
    beacon_lam: float | None = None
    # soft bits weighted by the received block's level *in the carrier band* (squared) rather than by its
    # overall level: right when the carrier sits in a band of its own (what hides it there, the host's
    # content in that band and the codec's noise, which follows that content, scales with the band's level)
    band_weight: bool = False
    active_phases: int = 4  # bit phases the extractor decodes at once (the most likely ones)
    seed: int = 0x55

    def schedule(self, k: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(lam, carrier level in dB) of the bit blocks ``k`` (counted from the payload's first block;
        ``frame`` bits per copy): preamble copies, beacon copies, the rest."""
        c = np.floor_divide(k, frame)
        pre = (c >= 0) & (c < self.acquire_copies)
        after = c - self.acquire_copies
        beacon = (after >= 0) & (after % max(self.beacon_every, 1) == self.beacon_every - 1)
        loud = self.strength_db if self.acquire_strength_db is None else self.acquire_strength_db
        b_lam = self.acquire_lam if self.beacon_lam is None else self.beacon_lam
        lam = np.where(pre, self.acquire_lam, np.where(beacon, b_lam, self.lam))
        db = np.where(pre | beacon, loud, self.strength_db)
        return lam, db

    def amplitude(self, rms: np.ndarray, db: np.ndarray) -> np.ndarray:
        """The carrier's amplitude for blocks of level ``rms`` at carrier level ``db``."""
        return np.maximum(rms * 10 ** (db / 20), 10 ** (self.floor_dbfs / 20))


def carrier(cfg: SSConfig) -> np.ndarray:
    """The unit-RMS, band-limited pseudo-noise carrier of one bit."""
    rng = np.random.default_rng(cfg.seed)
    pn = rng.choice([-1.0, 1.0], size=cfg.bit_len * 4)
    sos = butter(6, [cfg.band[0], cfg.band[1]], btype="band", fs=INTERNAL_SAMPLE_RATE, output="sos")
    p = sosfiltfilt(sos, pn)[cfg.bit_len * 2 : cfg.bit_len * 3]
    p *= np.hanning(cfg.bit_len + 2)[1:-1] ** 0.25  # soft edges: less click at block borders
    return p / np.sqrt(np.mean(p**2))


class SSEmbedStage:
    """Streaming embedder: chunks whose length is a multiple of ``bit_len``; adds no latency."""

    def __init__(self, bits: np.ndarray, cfg: SSConfig = SSConfig()) -> None:
        if len(bits) == 0:
            raise ValueError("nothing to embed")
        self.cfg = cfg
        self.bits = np.asarray(bits, dtype=np.uint8)
        self._p = carrier(cfg)
        self._pp = float(self._p @ self._p)
        self.reset()

    latency_s = 0.0

    def reset(self) -> None:
        """Start again at the first bit."""
        self._k = 0

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Embed the next bits into ``chunk``."""
        n = self.cfg.bit_len
        if chunk.sample_rate != INTERNAL_SAMPLE_RATE or len(chunk) % n:
            raise ValueError(f"SS embedding takes 16 kHz chunks of a multiple of {n} samples")
        x = chunk.samples.astype(np.float64).reshape(-1, n)
        k = self._k + np.arange(len(x))
        sign = 2.0 * self.bits[k % len(self.bits)] - 1.0
        lam, db = self.cfg.schedule(k, len(self.bits))
        amp = self.cfg.amplitude(np.sqrt(np.mean(x**2, axis=1)), db)
        proj = (x @ self._p) / self._pp
        y = x + ((amp * sign) - lam * proj)[:, None] * self._p[None, :]
        self._k += len(x)
        return AudioChunk(y.ravel().astype(np.float32), chunk.sample_rate, chunk.timestamp)


def embed(x: np.ndarray, bits: np.ndarray, cfg: SSConfig = SSConfig()) -> np.ndarray:
    """Embed the repeated ``bits`` into the whole of ``x`` (16 kHz); same output as streaming."""
    n = cfg.bit_len
    pad = (-len(x)) % n
    xp = np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)])
    return SSEmbedStage(bits, cfg).process(AudioChunk(xp, INTERNAL_SAMPLE_RATE)).samples[: len(x)]


class SSUnembedStage:
    """The receiver's inverse of :class:`SSEmbedStage` once the payload is known.

    With the bit frame (``frame_bits`` of the opened payload), the sample where a copy of it starts
    (``origin``, from :attr:`SSExtractor.frame_origin`) and the channel's polarity, every block's
    carrier term is known: the added ``amp * sign * p`` is subtracted and the host's projection on
    ``p``, scaled by ``1 - lam`` at the sender, is scaled back (so ``lam`` must be below 1). ``amp``
    follows the host block's level, estimated from the received block and refined once. Through a
    transparent channel this returns the host exactly (up to float rounding). In the acquisition
    preamble (``cfg.acquire_copies``) with ``acquire_lam`` 1 only the added carrier is subtracted.
    ``payload_start``: where the embedding of these bits began on the caller's timeline; by default the
    first frame start at or after 0 (right for a whole file).

    Streaming: arbitrary chunk lengths in, the same number out, delayed by exactly ``bit_len`` samples
    (a block is processed once it is complete). Samples before the first block boundary pass unchanged.
    """

    def __init__(self, bits: np.ndarray, origin: int, cfg: SSConfig, polarity: float = 1.0,
                 payload_start: int | None = None) -> None:
        if not 0.0 <= cfg.lam < 1.0:
            raise ValueError("a carrier embedded with lam >= 1 removed the host's projection: it cannot be undone")
        if len(bits) == 0:
            raise ValueError("no bits")
        self.cfg = cfg
        self.origin = int(origin)
        self._sign = polarity * (2.0 * np.asarray(bits, np.float64) - 1.0)
        self._p = carrier(cfg)
        self._pp = float(self._p @ self._p)
        self._hold = np.zeros(0)
        self._next: int | None = None  # absolute index of the first held sample
        self._out = np.zeros(cfg.bit_len)
        frame = len(bits) * cfg.bit_len
        self.payload_start = self.origin % frame if payload_start is None else int(payload_start)

    latency_samples = property(lambda self: self.cfg.bit_len)

    def _unembed(self, blocks: np.ndarray, first_block: int) -> np.ndarray:
        n, c = self.cfg.bit_len, self.cfg
        k = (first_block + np.arange(len(blocks))) % len(self._sign)
        s = self._sign[k]
        cy = blocks @ self._p / self._pp
        start = self.origin + first_block * n + np.arange(len(blocks)) * n  # sample of each block
        kb = (start - self.payload_start) // n
        lam, db = c.schedule(kb, len(self._sign))
        # the gain that brings the host's projection back; where it was fully removed (lam 1) only
        # the added carrier is taken out
        restore = np.where(lam < 1.0, 1.0 / np.maximum(1.0 - lam, 1e-9), 1.0)
        x = blocks
        for _ in range(2):  # amp from the received level, then from the recovered host's level
            amp = c.amplitude(np.sqrt(np.mean(x**2, axis=1)), db)
            proj = (cy - amp * s) * restore
            x = blocks + (proj - cy)[:, None] * self._p[None, :]
        assert x.shape[1] == n
        return x

    def process(self, x: np.ndarray, start: int) -> np.ndarray:
        """Chunk ``x`` whose first sample has absolute index ``start``; returns ``len(x)`` samples."""
        n = self.cfg.bit_len
        x = np.asarray(x, np.float64)
        n_in = len(x)
        if self._next is None:
            first = self.origin + -(-(start - self.origin) // n) * n  # first block boundary >= start
            head = min(len(x), first - start)
            self._out = np.concatenate([self._out, x[:head]])
            x, start = x[head:], start + head
            self._next = start
        if start != self._next + len(self._hold):
            raise ValueError("SSUnembedStage needs contiguous chunks")
        buf = np.concatenate([self._hold, x])
        m = len(buf) // n
        if m:
            first_block = (self._next - self.origin) // n
            done = self._unembed(buf[: m * n].reshape(m, n), first_block).ravel()
            self._out = np.concatenate([self._out, done])
        self._hold = buf[m * n :]
        self._next += m * n
        out, self._out = self._out[:n_in], self._out[n_in:]
        return out.astype(np.float32)


class SSExtractor:
    """Streaming extractor: correlates at several bit phases at once, each feeding its own
    :class:`PayloadReceiver`; the first phase whose payload opens wins. No separate acquisition
    step is needed, so time offsets of any size are handled.
    """

    MAX_PHASES = 32
    BATCH = 1600  # samples gathered before the receivers run (0.1 s: bounds their per-call overhead)
    DECAY = 0.9  # per batch, for the phase statistics (~1 s memory)
    # block RMS below which soft bits are no longer scaled up: quieter blocks (pauses, where the codec
    # spends few bits) count less. ``benchmarks/receiver_design.py --part soft`` (one run): raw bit errors
    # after summing 4 copies through Opus 96k, quiet carrier: 15.4 % with the plain correlation, 5.6 % at
    # -45 dBFS, 7.1 % at -40, 8.8 % at -35 (lam 0.6 at -24 dB: 0.56 / 0.19 / 0.19 / 0.29 %). -40 rather
    # than -45 keeps a margin for single-copy decodes: on the test suite's voices -45 opened the preamble
    # from its first copy less often and made tests/test_stego_ss.py::test_ss_payload_survives_opus flaky.
    LEVEL_FLOOR = 10 ** (-40 / 20)

    def __init__(self, key: bytes | None, cfg: SSConfig = SSConfig()) -> None:
        self.cfg = cfg
        self.key = key
        self._p = carrier(cfg)
        self._sos = butter(4, list(cfg.band), btype="band", fs=INTERNAL_SAMPLE_RATE, output="sos")
        # below this in-band level a block's soft bit is no longer scaled up (the carrier's own level in a
        # block at LEVEL_FLOOR)
        self._band_floor = self.LEVEL_FLOOR * 10 ** (cfg.strength_db / 20)
        step = max(1, cfg.bit_len // self.MAX_PHASES)
        self.phases = list(range(0, cfg.bit_len, step))
        self.receivers = [PayloadReceiver(key) for _ in self.phases]
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        for r in self.receivers:
            r.reset()
        self._buf = np.zeros(0)
        self._fbuf = np.zeros(0)  # the same samples band-passed to the carrier's band (band_weight)
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._buf_start = 0  # absolute sample index of self._buf[0]
        self._tail = np.zeros(0)  # the last TAIL samples received (to pin the bit phase down at the lock)
        self._next = list(self.phases)  # absolute start of each phase's next block
        self._level = [0.0] * len(self.phases)
        # each inactive phase's soft bits, held for its receiver until the phase is active again (the
        # most recent HOLD_BITS; older ones become erasures, counted in _gap): a phase that the selection
        # leaves out for a while (most often at the stream's start, before its statistics settle) still
        # gets the frame header and body bits it missed
        self._held: list[list[np.ndarray]] = [[] for _ in self.phases]
        self._gap = [0] * len(self.phases)
        self._stats = np.zeros((len(self.phases), 3))  # decayed sum |soft|, sum soft^2, count per phase
        self._active: set[int] = set()
        self._seen = 0
        self._winner: int | None = None
        self.seconds_to_lock: float | None = None
        self.frame_origin: int | None = None  # a sample (from the first pushed) where a frame copy starts
        self.frame_polarity = 1.0  # the channel's polarity at frame_origin (-1: inverted)

    @property
    def receiver(self) -> PayloadReceiver:
        """The receiver that locked, else the one that got furthest."""
        if self._winner is not None:
            return self.receivers[self._winner]
        return max(self.receivers, key=lambda r: (r.state.found, r.state.copies))

    def _soft(self, y: np.ndarray, offset: int, yb: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Soft bits of the whole blocks of ``y`` from ``offset`` (``yb``: ``y`` band-passed to the
        carrier's band, for ``band_weight``; computed here when not given)."""
        n = self.cfg.bit_len
        m = (len(y) - offset) // n
        blocks = y[offset : offset + m * n].reshape(m, n)
        corr = blocks @ self._p / n
        if self.cfg.band_weight:
            # the carrier's amplitude follows the block's overall level, what hides it the band's: the
            # correlation over the band's RMS squared is a log-likelihood ratio up to one factor (a block
            # whose band the host fills counts little, one where the carrier has the band to itself much)
            if yb is None:
                yb = sosfilt(self._sos, y)
            fb = yb[offset : offset + m * n].reshape(m, n)
            rb = np.sqrt(np.einsum("ij,ij->i", fb, fb) / n)
            return corr / np.maximum(rb, self._band_floor) ** 2 * self._band_floor, offset + m * n
        # the carrier and what hides it (the host's remaining projection, the codec's noise) both scale
        # with the host's level, so the correlation over the block's RMS is a log-likelihood ratio up to
        # one factor: loud and quiet stretches count by their reliability, not their loudness
        rms = np.sqrt(np.einsum("ij,ij->i", blocks, blocks) / n)
        return corr / np.maximum(rms, self.LEVEL_FLOOR), offset + m * n

    # band-weighted soft bits (after each phase's running normalization to mean |soft| 1) are clipped to
    # +-CLIP: their weights span orders of magnitude, and a few huge values made 64-bit windows look like
    # sync words by chance (3-4x the header decodes: extract RTF 0.11-0.16 without a payload). A /tmp sweep
    # (6 corpus voices x 30 s, Opus 96k, one run each): no clip 0.162, CLIP 2 0.085, 1.5 0.073, 1 0.058,
    # 0.5 0.040; lock from the start max 8.7 / 5.8 / 5.8 / 5.8 / 11.6 s, with 5 % loss 14.5 / 5.8 / 5.8 /
    # 3.0 / 5.8 s
    CLIP = 1.0
    HOLD_BITS = frame_len(MAX_BODY)  # an inactive phase's soft bits held for its receiver: the longest frame
    TAIL = 16000  # samples kept for pinning the bit phase down at the lock (1 s: 1000 bits)

    def _pin_phase(self, origin: int, bits: np.ndarray, polarity: float) -> tuple[int, float]:
        """The frame origin less than a bit from ``origin`` at which the last second's blocks correlate
        best with the known bit frame, and the channel's polarity there. A carrier confined to a high band
        correlates strongly with itself shifted by a sample or two, with either sign, so a neighbouring
        phase (seeing the bits inverted) may open the payload first; even 9 samples off, the 6-7.7 kHz
        carrier still correlates 0.45 with itself (a /tmp measurement), enough for that phase to open the
        payload from soft bits held while it was inactive. A whole bit off correlates with other bits:
        about 0."""
        n, tail = self.cfg.bit_len, self._tail
        t0 = self._buf_start + len(self._buf) - len(tail)  # absolute index of tail[0]
        sign = polarity * (2.0 * np.asarray(bits, np.float64) - 1.0)
        best, best_v = (origin, polarity), -np.inf
        for d in range(1 - n, n):
            o = origin + d
            first = (o - t0) % n  # first block start in the tail at this phase
            m = (len(tail) - first) // n
            if m < 16:
                return origin, polarity
            blocks = tail[first : first + m * n].reshape(m, n)
            k = ((t0 + first - o) // n + np.arange(m)) % len(bits)
            v = float(np.sum(sign[k] * (blocks @ self._p)))
            if abs(v) > best_v:
                best, best_v = (o, polarity * float(np.sign(v) or 1.0)), abs(v)
        return best

    def _hold(self, i: int, soft: np.ndarray) -> None:
        """Keep inactive phase ``i``'s newest soft bits; the oldest beyond HOLD_BITS become erasures."""
        held = self._held[i]
        held.append(soft)
        over = sum(map(len, held)) - self.HOLD_BITS  # < the total held: never empties the list
        while over >= len(held[0]):
            over -= len(held[0])
            self._gap[i] += len(held.pop(0))
        if over > 0:
            held[0] = held[0][over:]
            self._gap[i] += over

    def flush(self) -> ReceiverState:
        """Run the receivers on whatever is buffered (the end of a file)."""
        return self.push(np.zeros(0), force=True)

    def push(self, samples: np.ndarray, force: bool = False) -> ReceiverState:
        """Add received 16 kHz samples (the receivers run once ``BATCH`` samples are waiting)."""
        self._seen += len(samples)
        if self._winner is not None:
            return self.receiver.state
        samples = np.asarray(samples, np.float64)
        self._buf = np.concatenate([self._buf, samples])
        self._tail = np.concatenate([self._tail, samples])[-self.TAIL :]
        if self.cfg.band_weight and len(samples):
            fb, self._zi = sosfilt(self._sos, samples, zi=self._zi)
            self._fbuf = np.concatenate([self._fbuf, fb])
        if not force and self._buf_start + len(self._buf) - min(self._next) < self.BATCH:
            return self.receiver.state
        softs = []
        for i, _ in enumerate(self.phases):
            soft, used = self._soft(self._buf, self._next[i] - self._buf_start,
                                    self._fbuf if self.cfg.band_weight else None)
            self._next[i] = self._buf_start + used
            softs.append(soft)
            self._stats[i] = self.DECAY * self._stats[i] + [np.sum(np.abs(soft)), np.sum(soft**2), len(soft)]
        # the carrier's phase: at the right bit phase the host's projection is removed and each soft
        # value is +-amplitude, so |soft| is least spread; decode only the cfg.active_phases most likely ones
        cnt = np.maximum(self._stats[:, 2], 1.0)
        score = (self._stats[:, 0] / cnt) / np.sqrt(self._stats[:, 1] / cnt + 1e-30)
        active = set(np.argsort(-score)[: self.cfg.active_phases].tolist())
        # and every phase whose receiver has anchored a frame: it found a sync word and a header there, and
        # its first copy may be a few bits from opening (these phases' soft bits are computed anyway)
        active |= {i for i, r in enumerate(self.receivers) if r.anchored}
        self._active = active
        for i, soft in enumerate(softs):
            if not len(soft):
                continue
            # one running scale per phase: per-chunk normalization would erase relative confidence
            m = float(np.mean(np.abs(soft)))
            self._level[i] = 0.99 * self._level[i] + 0.01 * m if self._level[i] else m
            soft = soft / (self._level[i] + 1e-12)
            if self.cfg.band_weight:
                soft = np.clip(soft, -self.CLIP, self.CLIP)
            if i not in active:
                # a receiver must see an unbroken bit stream: an inactive phase's bits wait for it (the
                # oldest beyond HOLD_BITS as erasures)
                self._hold(i, soft)
                continue
            if self._held[i] or self._gap[i]:
                soft = np.concatenate([np.zeros(self._gap[i]), *self._held[i], soft])
                self._held[i], self._gap[i] = [], 0
            state = self.receivers[i].push(soft)
            if state.opened is not None:
                self._winner = i
                self.seconds_to_lock = self._next[i] / INTERNAL_SAMPLE_RATE
                origin = self._next[i] - self.receivers[i].bits_since_lock * self.cfg.bit_len
                self.frame_origin, self.frame_polarity = self._pin_phase(
                    origin, frame_bits(state.opened.data), self.receivers[i].polarity)
                break
        drop = min(self._next) - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            if self.cfg.band_weight:
                self._fbuf = self._fbuf[drop:]
            self._buf_start += drop
        return self.receiver.state


def extract_ss(y: np.ndarray, key: bytes | None, cfg: SSConfig = SSConfig(), step: int = 1600) -> SSExtractor:
    """Stream ``y`` (16 kHz) through an :class:`SSExtractor` in ``step``-sample pushes (0.1 s: the lock
    time is known to this resolution) until the payload opens or the audio ends, then decode what is
    still buffered; returns the extractor (``.receiver.state``, ``.seconds_to_lock``)."""
    ex = SSExtractor(key, cfg)
    for i in range(0, len(y), step):
        if ex.push(y[i : i + step]).opened is not None:
            return ex
    ex.flush()
    return ex
