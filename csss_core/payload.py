"""The hidden payload: its typed object, the versioned sealed byte format, and the bit frame.

Byte format (big-endian)::

    header (8 bytes): magic b"CS" | version u8 | flags u8 | body length u16 | CRC-16 of the first 6
    body:             nonce (12) | ChaCha20-Poly1305(plaintext, aad=header[:6])      (flag SEALED)
                      nonce (12) | plaintext | CRC-32                                 (no key: not authenticated)
    plaintext:        dim u16 | bits u8 (=8) | lo f32 | step f32 | dim quantized bytes | extra len u8 | extra
                  or  dim u16 | 0x81 | values on the fixed grid 1, packed bits | extra len u8 | extra

Grid 1 (``data/embedding_grid.json``, made by ``models/make_embedding_grid.py``) quantizes the CSSS
speaker embedding (186 values) with per-dimension ranges and bit widths and no per-payload parameters:
127 bytes instead of 197, which shortens the frame, and so the time to lock, by a third.

Bit frame (what a stego carrier transmits, repeated for the whole call)::

    64-bit sync word | interleave(conv(header bits)) | interleave(ldpc(body bits))

The header (64 bits) has the K=7 convolutional code, the body the rate-1/2 LDPC code of
:mod:`csss_core.fec` (version 2; version 1 had the convolutional code there too, and needed about
1.5 dB more signal to open a copy).

:class:`PayloadReceiver` takes soft bits (positive = 1) at any offset, finds the sync word, combines
the soft values of every repeated copy, and locks as soon as a copy decodes and opens. A header the
Viterbi decoder misses after a sure sync hit is taken from the book of headers this version can send
(a flag and a body length: ~2,200 of them), tentatively, until the next copy's sync word confirms it.
"""

from __future__ import annotations

import binascii
import os
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from csss_core.fec import (
    K,
    conv_encode,
    conv_encode_many,
    deinterleave,
    interleave,
    interleave_order,
    ldpc_decode,
    ldpc_encode,
    syndrome_weight,
    viterbi_decode,
)

MAGIC = b"CS"
VERSION = 2  # 2: the body has the LDPC code
FLAG_SEALED = 0x01
HEADER_LEN = 8
NONCE_LEN = 12
TAG_LEN = 16
KEY_LEN = 32
MAX_DIM = 1024
MAX_EXTRA = 64
MAX_BODY = NONCE_LEN + 3 + 8 + MAX_DIM + 1 + MAX_EXTRA + TAG_LEN
GRID_CODE = 0x81  # the "bits" byte of a payload on grid 1
SYNC_BITS = 64
SYNC = np.random.default_rng(0x5EC2E7).integers(0, 2, SYNC_BITS).astype(np.uint8)
"""The fixed sync word (public; it only marks where a frame starts)."""


class PayloadError(ValueError):
    """A payload that is malformed, forged, or sealed with another key."""


class PayloadVersionError(PayloadError):
    """A well-formed header of another payload format version (made by another csss version)."""


@dataclass(frozen=True)
class Grid:
    """A fixed per-dimension quantization grid: value ``lo + q * step`` with ``q`` in ``bits`` bits."""

    lo: np.ndarray
    step: np.ndarray
    bits: np.ndarray

    @property
    def dim(self) -> int:
        """How many values."""
        return int(self.lo.size)

    @property
    def nbytes(self) -> int:
        """Bytes of one packed vector."""
        return (int(self.bits.sum()) + 7) // 8

    def encode(self, e: np.ndarray) -> bytes:
        """Quantize (clipping to the grid) and pack MSB first."""
        top = (1 << self.bits) - 1
        q = np.clip(np.rint((np.asarray(e, np.float64) - self.lo) / self.step), 0, top).astype(np.int64)
        out = np.concatenate([(int(v) >> np.arange(b - 1, -1, -1)) & 1 for v, b in zip(q, self.bits, strict=True)])
        return np.packbits(out.astype(np.uint8)).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        """Unpack :meth:`encode` output."""
        if len(data) != self.nbytes:
            raise PayloadError("grid payload has the wrong length")
        bits = np.unpackbits(np.frombuffer(data, np.uint8)).astype(np.int64)
        q = np.zeros(self.dim, np.int64)
        pos = 0
        for j, b in enumerate(self.bits):
            q[j] = int((bits[pos : pos + b] << np.arange(b - 1, -1, -1)).sum())
            pos += int(b)
        return (self.lo + q * self.step).astype(np.float32)


@cache
def embedding_grid() -> Grid:
    """Grid 1, shipped with the package."""
    import json

    spec = json.loads((Path(__file__).parent / "data" / "embedding_grid.json").read_text())
    return Grid(np.asarray(spec["lo"], np.float64), np.asarray(spec["step"], np.float64),
                np.asarray(spec["bits"], np.int64))


@dataclass(frozen=True)
class SpeakerPayload:
    """What travels hidden: the real speaker's embedding (float vector) and a few extra bytes.

    ``extra`` carries what the receiver needs besides the embedding to undo the conversion (the
    pseudo-speaker's seed and draw), at most 64 bytes.
    """

    embedding: np.ndarray
    extra: bytes = b""
    compact: bool = False  # quantize on grid 1 (needs its dimension) instead of 8 bits between min and max

    def __post_init__(self) -> None:
        if len(self.extra) > MAX_EXTRA:
            raise PayloadError(f"extra data is limited to {MAX_EXTRA} bytes")
        e = np.asarray(self.embedding, dtype=np.float32).ravel()
        if not 1 <= e.size <= MAX_DIM:
            raise PayloadError(f"embedding must have 1..{MAX_DIM} values, got {e.size}")
        if not np.all(np.isfinite(e)):
            raise PayloadError("embedding has NaN or infinite values")
        if self.compact and e.size != embedding_grid().dim:
            raise PayloadError(f"the compact format holds {embedding_grid().dim} values, got {e.size}")
        object.__setattr__(self, "embedding", e)

    def to_bytes(self) -> bytes:
        """Quantize (8 bits per value between min and max, or grid 1 when ``compact``) and serialize."""
        tail = bytes([len(self.extra)]) + self.extra
        if self.compact:
            return struct.pack(">HB", self.embedding.size, GRID_CODE) + embedding_grid().encode(self.embedding) + tail
        e = self.embedding.astype(np.float64)
        lo, hi = float(e.min()), float(e.max())
        step = (hi - lo) / 255.0 if hi > lo else 1.0
        q = np.clip(np.rint((e - lo) / step), 0, 255).astype(np.uint8)
        return struct.pack(">HBff", e.size, 8, lo, step) + q.tobytes() + bytes([len(self.extra)]) + self.extra

    @classmethod
    def from_bytes(cls, data: bytes) -> SpeakerPayload:
        """Parse :meth:`to_bytes` output; raise :class:`PayloadError` on anything else."""
        if len(data) >= 3 and data[2] == GRID_CODE:
            grid = embedding_grid()
            dim = struct.unpack(">H", data[:2])[0]
            end = 3 + grid.nbytes
            if dim != grid.dim or len(data) < end + 1 or len(data) != end + 1 + data[end]:
                raise PayloadError("compact payload length does not match its dimension and extra data")
            return cls(grid.decode(bytes(data[3:end])), bytes(data[end + 1 :]), compact=True)
        if len(data) < 11:
            raise PayloadError("payload too short")
        dim, bits, lo, step = struct.unpack(">HBff", data[:11])
        if bits != 8:
            raise PayloadError(f"unsupported quantization: {bits} bits")
        if not 1 <= dim <= MAX_DIM or len(data) < 12 + dim:
            raise PayloadError("payload length does not match its dimension")
        n_extra = data[11 + dim]
        if len(data) != 12 + dim + n_extra:
            raise PayloadError("payload length does not match its extra data")
        if not (np.isfinite(lo) and np.isfinite(step)) or step <= 0:
            raise PayloadError("invalid quantization range")
        q = np.frombuffer(data[11 : 11 + dim], dtype=np.uint8).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            values = (lo + q * step).astype(np.float32)
        return cls(values, bytes(data[12 + dim :]))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE."""
    return binascii.crc_hqx(data, 0xFFFF)


def new_key() -> bytes:
    """A fresh random 256-bit call key."""
    return os.urandom(KEY_LEN)


def _check_key(key: bytes | None) -> None:
    if key is not None and len(key) != KEY_LEN:
        raise PayloadError(f"a call key is {KEY_LEN} bytes, got {len(key)}")


def seal(payload: SpeakerPayload, key: bytes | None, nonce: bytes | None = None) -> bytes:
    """Header + body bytes for ``payload``; sealed with ChaCha20-Poly1305 when ``key`` is given."""
    _check_key(key)
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    if len(nonce) != NONCE_LEN:
        raise PayloadError("nonce must be 12 bytes")
    plain = payload.to_bytes()
    flags = FLAG_SEALED if key is not None else 0
    body_len = NONCE_LEN + len(plain) + (TAG_LEN if key is not None else 4)
    header = header_bytes(flags, body_len)
    head6 = header[:6]
    if key is not None:
        body = nonce + ChaCha20Poly1305(key).encrypt(nonce, plain, head6)
    else:
        body = nonce + plain + struct.pack(">I", binascii.crc32(plain))
    return header + body


@dataclass(frozen=True)
class Header:
    """A parsed, CRC-checked frame header."""

    version: int
    flags: int
    body_len: int

    @property
    def sealed(self) -> bool:
        """True when the body is AEAD-sealed."""
        return bool(self.flags & FLAG_SEALED)


def parse_header(data: bytes) -> Header:
    """Check magic, version, CRC and length bounds of the first 8 bytes."""
    if len(data) < HEADER_LEN:
        raise PayloadError("header too short")
    if data[:2] != MAGIC:
        raise PayloadError("bad magic")
    version, flags, body_len = struct.unpack(">BBH", data[2:6])
    (crc,) = struct.unpack(">H", data[6:8])
    if crc != crc16(data[:6]):
        raise PayloadError("header checksum mismatch")
    if version != VERSION:
        raise PayloadVersionError(f"payload format version {version}, made by another csss version (this one "
                                  f"reads version {VERSION})")
    if flags & ~FLAG_SEALED:
        raise PayloadError("unknown header flags")
    if not NONCE_LEN + 12 + 4 <= body_len <= MAX_BODY:
        raise PayloadError(f"body length {body_len} out of range")
    return Header(version, flags, body_len)


@dataclass(frozen=True)
class Opened:
    """An accepted payload, whether a key authenticated it, and the sealed bytes it was opened from
    (:func:`frame_bits` of them is the exact bit frame the sender embedded)."""

    payload: SpeakerPayload
    authenticated: bool
    data: bytes = b""


def open_sealed(data: bytes, key: bytes | None) -> Opened:
    """Parse and open header + body bytes.

    A sealed body needs the key and a valid tag; an unsealed one is accepted only when no key is
    expected (a receiver with a key refuses unsealed payloads: they could be anyone's).

    Raises:
        PayloadError: malformed, forged, sealed with another key, or unsealed while a key is set.
    """
    _check_key(key)
    h = parse_header(data)
    body = data[HEADER_LEN:]
    if len(body) != h.body_len:
        raise PayloadError("body length does not match the header")
    nonce, rest = body[:NONCE_LEN], body[NONCE_LEN:]
    if h.sealed:
        if key is None:
            raise PayloadError("payload is sealed and no key was given")
        try:
            plain = ChaCha20Poly1305(key).decrypt(nonce, rest, data[:6])
        except InvalidTag as exc:
            raise PayloadError("authentication failed (wrong key or forged payload)") from exc
        return Opened(SpeakerPayload.from_bytes(plain), True, bytes(data))
    if key is not None:
        raise PayloadError("payload is not sealed but a key is expected")
    plain, crc = rest[:-4], rest[-4:]
    if struct.unpack(">I", crc)[0] != binascii.crc32(plain):
        raise PayloadError("payload checksum mismatch")
    return Opened(SpeakerPayload.from_bytes(plain), False, bytes(data))


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def _bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


HEADER_CODED = 2 * (8 * HEADER_LEN + K - 1)  # the header's convolutional code: rate 1/2, terminated


def body_coded_len(n_bytes: int) -> int:
    """Coded bits for a body of ``n_bytes`` (the LDPC code: rate 1/2)."""
    return 16 * n_bytes


def frame_bits(sealed_bytes: bytes) -> np.ndarray:
    """The 0/1 bit frame for :func:`seal` output: sync, coded header, coded body."""
    head, body = sealed_bytes[:HEADER_LEN], sealed_bytes[HEADER_LEN:]
    return np.concatenate([SYNC, interleave(conv_encode(_bits(head))), interleave(ldpc_encode(_bits(body)))])


def frame_len(body_len: int) -> int:
    """Length in bits of a frame whose body has ``body_len`` bytes."""
    return SYNC_BITS + HEADER_CODED + body_coded_len(body_len)


def _known_signs(header_bits: np.ndarray) -> np.ndarray:
    """The first bits of a frame with this header (sync word, coded header) as +-1."""
    return 2.0 * np.concatenate([SYNC, interleave(conv_encode(header_bits))]) - 1.0


def llr_scale(known_soft: np.ndarray) -> float:
    """The factor that turns soft values into log-likelihood ratios, from soft values whose bits are
    known (as ``soft * sign``, 0 = erased): for a bit sent as +-m in Gaussian noise of variance v the
    ratio is 2 m y / v. 0.0 when the known bits say nothing (too few, or wrong on average). Known bits
    that came through exactly (v = 0: no noise at all) count as 20 dB above the noise."""
    z = known_soft[known_soft != 0.0]
    if len(z) < 16:
        return 0.0
    m = float(np.mean(z))
    if m <= 0.0:
        return 0.0
    return 2.0 * m / max(float(np.var(z)), 0.01 * m * m)


def header_bytes(flags: int, body_len: int) -> bytes:
    """The 8 header bytes for ``flags`` and ``body_len`` (what :func:`seal` writes)."""
    head6 = MAGIC + struct.pack(">BBH", VERSION, flags, body_len)
    return head6 + struct.pack(">H", crc16(head6))


MIN_BODY = NONCE_LEN + 12 + 4  # the shortest body :func:`parse_header` accepts


@cache
def _header_book() -> tuple[np.ndarray, np.ndarray]:
    """Every header this version can send (each flag value x each body length) as its transmitted
    +-1 bits (coded and interleaved, :data:`HEADER_CODED` of them), and their 8 bytes' bits."""
    heads = [header_bytes(f, n) for f in (0, FLAG_SEALED) for n in range(MIN_BODY, MAX_BODY + 1)]
    bits = np.stack([_bits(h) for h in heads])
    coded = conv_encode_many(bits)[:, interleave_order(HEADER_CODED)]
    return (2.0 * coded - 1.0).astype(np.float32), bits


@dataclass
class ReceiverState:
    """What the receiver knows so far (for status lines and ``csss extract``)."""

    found: bool = False  # a frame header was decoded
    authenticated: bool = False
    opened: Opened | None = None
    bits_to_lock: int | None = None  # soft bits consumed when the payload opened
    copies: int = 0  # frame copies combined in the last attempt
    failures: list[str] = field(default_factory=list)  # distinct reasons for rejected frames


class PayloadReceiver:
    """Streaming frame sync, soft combining of repeated copies, FEC decoding and opening.

    Feed soft bits with :meth:`push`; it returns the state, which is locked once ``opened`` is set.
    """

    # normalized correlation; random data scores about N(0, 1/8); the header CRC rejects false hits
    SYNC_THRESHOLD = 0.4
    # random data violates ~50% of the code's parity checks; 10% raw bit errors about 30%
    SYNDROME_LIMIT = 0.38
    # sync hits this strong (random data: ~1e-4) go to the decoder even when the syndrome looks bad
    SURE_SYNC = 0.6
    # A header is 64 bits but carries only its flag and body length: after a sure sync hit whose header
    # does not decode (one copy of 140 coded bits, often hit by a fricative's burst of errors), the
    # most likely of the ~2,200 headers this version can send is taken when its normalized correlation
    # with the received bits is at least HEADER_BOOK_MIN and beats the runner-up by HEADER_BOOK_MARGIN.
    # It must also come within HEADER_BOOK_GAP of the decoder's best path, which may be any 64 bits: a
    # header received clearly but not one this version sends (altered, forged) stays rejected (one bit
    # off moves at least 10 of the 140 coded bits: a gap of about 0.14 where the bits came through clean).
    # Such an anchor is tentative: it holds only if the next copy's sync word is where its length says.
    HEADER_BOOK_MIN = 0.5
    HEADER_BOOK_MARGIN = 0.05
    HEADER_BOOK_GAP = 0.1
    # Cyclic decodes are tried after one whole frame's worth of bits and then after every further quarter
    # of a frame: a first copy that just failed often opens with the start of the next one added (a voice
    # in a room), and through Opus 32k, where one copy carries too little, after 1 1/2 or 1 3/4 copies instead
    # of 2 or 3 (stego_lock.py: 8.7 s -> 6.5-7.2 s for 9 of 45 trials; every trial opened, 42/45 before).
    # Each try costs a header Viterbi decode and an LDPC decode (~5 ms when it fails).
    # erased soft bits a sync word may contain
    MAX_SYNC_ERASED = 3 * SYNC_BITS // 8

    def __init__(self, key: bytes | None = None, max_bits: int = 1 << 20) -> None:
        _check_key(key)
        self.key = key
        self.max_bits = max_bits
        self.reset()

    def reset(self) -> None:
        """Forget everything received."""
        self._buf = np.zeros(0, dtype=np.float64)
        self._consumed = 0  # bits pushed in total
        self.state = ReceiverState()
        self._anchor: int | None = None  # buffer index of a frame start
        self._flen: int | None = None
        self._tried_copies = 0
        self._tried_cyclic = 0
        self._scan = 0  # buffer index from which sync has not been ruled out
        self._polarity = 1.0
        self._sync_score = 0.0
        self._tentative = False  # the anchor's header came from the header book, not the decoder
        self._deep = 0  # failures noted after a header decoded (kept last)
        self._known = 2.0 * SYNC - 1.0  # known bits at a frame's start, as signs

    def _sync_hits(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Buffer indices from ``start`` where a sync word may begin, in order, and their normalized
        correlation scores (negative: the soft bits are inverted there). Computed once per search: each
        hit that turns out to be chance is skipped without scoring the rest of the buffer again."""
        y = self._buf
        n = len(y) - SYNC_BITS + 1
        if n <= start:
            return np.zeros(0, np.int64), np.zeros(0)
        s = 2.0 * SYNC - 1.0
        win = np.lib.stride_tricks.sliding_window_view(y, SYNC_BITS)[start:n]
        corr = win @ s
        norm = np.sum(np.abs(win), axis=1) + 1e-12
        score = corr / norm
        # windows that are mostly erasures (soft 0: bits the extractor did not decode) score high by chance;
        # one lost 20 ms packet (20 bits at 1000 bit/s) inside the sync word is allowed
        erased = np.concatenate([[0], np.cumsum(y[start:] == 0.0)])
        n_erased = erased[SYNC_BITS:] - erased[: n - start]
        score[n_erased > self.MAX_SYNC_ERASED] = 0.0
        hits = np.flatnonzero(np.abs(score) > self.SYNC_THRESHOLD)
        return start + hits, score[hits]

    @property
    def anchored(self) -> bool:
        """Whether a frame start has been found (a sync word and a header there) and is being decoded."""
        return self._anchor is not None

    @property
    def polarity(self) -> float:
        """+1, or -1 when the channel inverted the soft bits."""
        return self._polarity

    @property
    def bits_since_lock(self) -> int:
        """Soft bits pushed after the end of the last frame copy the opened payload was decoded from
        (so a new frame copy starts that many bits before the next one pushed); 0 before a lock."""
        if self.state.bits_to_lock is None:
            return 0
        return self._consumed - self.state.bits_to_lock

    def _header_at(self, p: int) -> Header | None:
        seg = self._buf[p + SYNC_BITS : p + SYNC_BITS + HEADER_CODED]
        if len(seg) < HEADER_CODED:
            return None
        coded = deinterleave(seg)
        if self._sync_score < self.SURE_SYNC and syndrome_weight(coded) > self.SYNDROME_LIMIT:
            return None  # a weak sync hit followed by no codeword (chance): skip the Viterbi decoder
        bits, metric = viterbi_decode(coded, 8 * HEADER_LEN)
        self._tentative = False
        try:
            h = parse_header(_bytes(bits))
        except PayloadVersionError as exc:
            # a clean header of another format version: a payload is there, say which (its body is not decoded)
            self.state.found = True
            self._note(str(exc))
            return None
        except PayloadError:
            if self._sync_score < self.SURE_SYNC:
                return None
            found = self._header_from_book(seg, metric)
            if found is None:
                return None
            bits, h = found
            self._tentative = True
        # the frame's first bits are now known (sync word and coded header): they measure each copy
        self._known = _known_signs(bits)
        return h

    def _header_from_book(self, seg: np.ndarray, metric: float) -> tuple[np.ndarray, Header] | None:
        """The most likely sendable header for the received coded header bits ``seg`` (interleaved, as
        received), if it is clear and close to the decoder's best path (``metric``)."""
        book, bits = _header_book()
        norm = float(np.sum(np.abs(seg)))
        if norm <= 0.0:
            return None
        score = book @ seg.astype(np.float32) / norm
        top = np.argpartition(-score, 1)[:2]
        best, second = (top if score[top[0]] >= score[top[1]] else top[::-1]).tolist()
        if (score[best] < self.HEADER_BOOK_MIN or score[best] - score[second] < self.HEADER_BOOK_MARGIN
                or score[best] < metric - self.HEADER_BOOK_GAP):
            return None
        return bits[best], parse_header(_bytes(bits[best]))

    def push(self, soft: np.ndarray) -> ReceiverState:
        """Add soft bits (positive = 1) and try to lock."""
        if self.state.opened is not None:
            self._consumed += len(soft)
            return self.state
        y = self._polarity * np.asarray(soft, dtype=np.float64).ravel()
        if not np.all(np.isfinite(y)):
            y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        self._buf = np.concatenate([self._buf, y])
        self._consumed += len(y)
        if self._anchor is None:
            self._search()
        if self._anchor is not None and self._flen is not None:
            self._try_open()
        if len(self._buf) > self.max_bits and self._anchor is None:
            drop = len(self._buf) - self.max_bits
            self._buf = self._buf[drop:]
        return self.state

    def _search(self) -> None:
        hits, scores = self._sync_hits(self._scan)
        sign = 1.0  # the buffer's polarity relative to when the scores were computed
        for p, score in zip(hits.tolist(), scores.tolist(), strict=True):
            if p + SYNC_BITS + HEADER_CODED > len(self._buf):
                self._scan = p  # wait for the header
                return
            self._sync_score = abs(score)
            if sign * score < 0:
                # an inverted carrier (a channel or phase error that flips every bit) is still the frame
                self._polarity = -self._polarity
                self._buf = -self._buf
                sign = -sign
            h = self._header_at(p)
            if h is None:
                self._scan = p + 1
                continue
            self._anchor = p
            self._flen = frame_len(h.body_len)
            self.state.found = True
            return
        self._scan = max(self._scan, len(self._buf) - SYNC_BITS + 1)
        # keep what may still be needed: the start of a sync word, and one frame's worth of
        # history (the tail of the copy before the first sync found is combined too)
        drop = len(self._buf) - frame_len(MAX_BODY)
        if drop > 0:
            self._buf = self._buf[drop:]
            self._scan = max(0, self._scan - drop)

    def _try_open(self) -> None:
        """Decode when more is known: first cyclically (the frame repeats, so the tail of the copy before
        the sync plus the copy after it is one whole frame: a lock after one frame's length of bits from
        any offset), then from whole copies after the sync (in case the bits before it belong to an
        earlier, different payload)."""
        assert self._flen is not None and self._anchor is not None
        flen, a, n = self._flen, self._anchor, len(self._buf)
        j = 1
        while self._tentative and n >= a + j * flen + SYNC_BITS:
            # a header taken from the book holds if the next copy's sync word is where it says; a sync
            # word lost with its packets says nothing, and the copy after it decides
            nxt = self._buf[a + j * flen : a + j * flen + SYNC_BITS]
            if np.count_nonzero(nxt == 0.0) > self.MAX_SYNC_ERASED:
                j += 1
            elif nxt @ (2.0 * SYNC - 1.0) > self.SYNC_THRESHOLD * (np.sum(np.abs(nxt)) + 1e-12):
                self._tentative = False
            else:
                self._restart()
                return
        start = max(0, a - (flen - 1))
        # in quarters of a frame, from one whole frame's worth on (beyond it, the start of the frame is counted
        # twice: the copy that just missed plus the start of the next)
        quarters = 4 * (n - start) // flen
        if quarters >= 4 and quarters > self._tried_cyclic and start < a:
            self._tried_cyclic = quarters
            acc = np.bincount((np.arange(start, n) - a) % flen, weights=self._buf[start:n], minlength=flen)
            if self._decode(acc, quarters // 4, cyclic=True):
                return
        copies = (n - a) // flen
        if copies == 0 or copies == self._tried_copies:
            return
        self._tried_copies = copies
        whole = self._buf[a : a + copies * flen].reshape(copies, flen)
        w = self._copy_weights(whole)
        if not self._decode((whole * w[:, None]).sum(axis=0), copies) and copies >= 8 and self._anchor == a:
            self._restart()  # persistent failure: maybe a false lock, look again

    def _copy_weights(self, whole: np.ndarray) -> np.ndarray:
        """Maximum-ratio weights of the frame copies ``[copies, frame]``: mean over variance of each
        copy's received (non-erased) soft bits where the bits are known (the sync word and the coded
        header found at the anchor), so quiet or damaged copies do not drown clean ones. A copy whose
        known bits were mostly lost gets the median weight of the others: the rest of it may be intact."""
        known = whole[:, : len(self._known)] * self._known
        got = known != 0.0
        n = got.sum(axis=1)
        ok = n >= len(self._known) // 2
        w = np.zeros(len(whole))
        if np.any(ok):
            z = known[ok]
            m = z.sum(axis=1) / n[ok]
            v = np.einsum("ij,ij->i", z, z) / n[ok] - m**2
            w[ok] = np.maximum(m, 0.0) / (v + 1e-3 * np.mean(np.abs(z[got[ok]])) ** 2 + 1e-30)
        if not np.any(w > 0):
            return np.ones(len(whole))
        w[~ok] = np.median(w[ok & (w > 0)])
        return w

    def _decode(self, acc: np.ndarray, copies: int, cyclic: bool = False) -> bool:
        """Decode combined soft bits; a header whose length disagrees with the anchored one restarts the
        search, unless the bits came from before the sync too (``cyclic``: they may be another payload's)."""
        assert self._flen is not None and self._anchor is not None
        self.state.copies = copies
        h_seg = acc[SYNC_BITS : SYNC_BITS + HEADER_CODED]
        h_bits, metric = viterbi_decode(deinterleave(h_seg), 8 * HEADER_LEN)
        try:
            h = parse_header(_bytes(h_bits))
        except PayloadError as exc:
            found = self._header_from_book(h_seg, metric)
            if found is None:
                self._note(str(exc))
                return False
            h_bits, h = found
        head = _bytes(h_bits)
        body_soft = acc[SYNC_BITS + HEADER_CODED :]
        if len(body_soft) != body_coded_len(h.body_len):
            self._note("frame length changed")
            if not cyclic:
                self._restart()
            return False
        # the sync word and the header just decoded are known bits: they scale the body's soft values
        known = _known_signs(h_bits)
        scale = llr_scale(acc[: len(known)] * known)
        if scale <= 0.0:
            self._note("no signal in the frame's known bits")
            return False
        b_bits, decoded = ldpc_decode(scale * deinterleave(body_soft), 8 * h.body_len)
        try:
            opened = open_sealed(head + _bytes(b_bits), self.key)
        except PayloadError as exc:
            if decoded:  # a whole codeword that does not open: another key, a forgery, an altered payload
                self._note(str(exc), opened_header=True)
            else:  # (its data bits may still have been right: the seal is tried all the same)
                self._note("payload body not decoded yet (too few or too noisy copies)")
            return False
        self.state.opened = opened
        self.state.authenticated = opened.authenticated
        # bits consumed up to the most recent frame start (a copy begins there)
        self.state.bits_to_lock = self._consumed - (len(self._buf) - self._anchor) % self._flen
        return True

    def _note(self, reason: str, opened_header: bool = False) -> None:
        """Record why a frame was rejected. Reasons from frames whose header decoded (a wrong key, an
        altered body) stay after those from frames that failed earlier, so ``failures[-1]`` is the most
        telling one: a copy that decoded further says more than a later, noisier sum of copies."""
        f = self.state.failures
        if reason in f:
            return
        if opened_header:
            f.append(reason)
            self._deep += 1
        else:
            f.insert(len(f) - self._deep, reason)

    def _restart(self) -> None:
        assert self._anchor is not None
        self._scan = self._anchor + 1
        self._anchor = None
        self._tentative = False
        self._flen = None
        self._tried_copies = 0
        self._tried_cyclic = 0
        self._search()
