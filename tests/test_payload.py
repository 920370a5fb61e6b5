from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csss_core import fec
from csss_core.payload import (
    HEADER_LEN,
    PayloadError,
    PayloadReceiver,
    SpeakerPayload,
    frame_bits,
    new_key,
    open_sealed,
    parse_header,
    seal,
)

RNG = np.random.default_rng(7)
EMB = RNG.normal(size=128).astype(np.float32)


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_seal_open_roundtrip_keeps_embedding():
    key = new_key()
    blob = seal(SpeakerPayload(EMB), key)
    opened = open_sealed(blob, key)
    assert opened.authenticated
    assert cosine(opened.payload.embedding, EMB) > 0.9999
    unsealed = open_sealed(seal(SpeakerPayload(EMB), None), None)
    assert not unsealed.authenticated and cosine(unsealed.payload.embedding, EMB) > 0.9999


def test_wrong_key_and_policy_errors():
    blob = seal(SpeakerPayload(EMB), new_key())
    with pytest.raises(PayloadError, match="authentication failed"):
        open_sealed(blob, new_key())
    with pytest.raises(PayloadError, match="no key"):
        open_sealed(blob, None)
    with pytest.raises(PayloadError, match="not sealed"):
        open_sealed(seal(SpeakerPayload(EMB), None), new_key())
    with pytest.raises(PayloadError, match="32 bytes"):
        seal(SpeakerPayload(EMB), b"short")
    with pytest.raises(PayloadError):
        SpeakerPayload(np.array([np.nan]))
    with pytest.raises(PayloadError):
        SpeakerPayload(np.zeros(0))


def test_fuzzed_payloads_are_never_accepted():
    """100,000 forged, altered and wrong-key attempts: none accepted."""
    key = new_key()
    good = seal(SpeakerPayload(EMB), key)
    rng = np.random.default_rng(123)
    accepted = 0
    n = 100_000
    for i in range(n):
        kind = i % 5
        b = bytearray(good)
        if kind == 0:  # flip 1..8 random bits
            for _ in range(rng.integers(1, 9)):
                j = int(rng.integers(0, len(b) * 8))
                b[j // 8] ^= 1 << (j % 8)
        elif kind == 1:  # truncate or extend
            b = b[: int(rng.integers(0, len(b)))] if rng.random() < 0.5 else b + bytes(rng.integers(0, 256, 5))
        elif kind == 2:  # valid header, random body (forgery)
            b = b[:HEADER_LEN] + bytearray(rng.integers(0, 256, len(b) - HEADER_LEN, dtype=np.uint8).tobytes())
        elif kind == 3:  # entirely random bytes
            b = bytearray(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
        else:  # the genuine blob under a wrong key
            try:
                open_sealed(bytes(b), bytes(rng.integers(0, 256, 32, dtype=np.uint8).tobytes()))
                accepted += 1
            except PayloadError:
                pass
            continue
        if bytes(b) == good:
            continue
        try:
            open_sealed(bytes(b), key)
            accepted += 1
        except PayloadError:
            pass
    assert accepted == 0


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_payload_error_only(data):
    for key in (None, b"k" * 32):
        try:
            open_sealed(data, key)
        except PayloadError:
            pass
    try:
        parse_header(data)
    except PayloadError:
        pass


def test_viterbi_corrects_noisy_channel():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 500)
    coded = fec.conv_encode(bits)
    soft = (2.0 * coded - 1) + rng.normal(0, 0.6, coded.size)
    assert np.mean((soft > 0) != coded) > 0.04  # the raw channel really is noisy
    dec, metric = fec.viterbi_decode(soft, 500)
    assert np.array_equal(dec, bits) and 0 < metric < 1
    x = np.arange(1000)
    assert np.array_equal(fec.deinterleave(fec.interleave(x)), x)
    assert not np.array_equal(fec.interleave(x), x)


def test_ldpc_opens_frames_the_convolutional_code_loses():
    """The body's LDPC code against the K=7 code on the same data bits, Eb/N0 = 1.5 dB (rate 1/2), the
    compact speaker payload's 1,336 bits: LDPC decodes nearly every frame, the convolutional code few."""
    rng = np.random.default_rng(12)
    k, sigma = 1336, 10 ** (-1.5 / 20)
    ldpc_ok = conv_ok = 0
    for _ in range(12):
        bits = rng.integers(0, 2, k)
        cw = fec.ldpc_encode(bits)
        assert cw.shape == (2 * k,) and np.array_equal(cw[:k], bits)  # systematic
        y = (2.0 * cw - 1) + rng.normal(0, sigma, cw.size)
        dec, ok = fec.ldpc_decode(2 * y / sigma**2, k)
        ldpc_ok += bool(ok and np.array_equal(dec, bits))
        yc = (2.0 * fec.conv_encode(bits) - 1) + rng.normal(0, sigma, 2 * (k + fec.K - 1))
        conv_ok += bool(np.array_equal(fec.viterbi_decode(yc, k)[0], bits))
    assert ldpc_ok >= 11 and conv_ok <= 6


def test_ldpc_fills_erasures_and_flags_what_it_cannot_decode():
    rng = np.random.default_rng(13)
    bits = rng.integers(0, 2, 224)  # the shortest body
    cw = fec.ldpc_encode(bits)
    llr = 4.0 * (2.0 * cw - 1)
    llr[rng.permutation(cw.size)[: cw.size // 4]] = 0.0  # a quarter erased, spread (as interleaved)
    dec, ok = fec.ldpc_decode(llr, 224)
    assert ok and np.array_equal(dec, bits)
    _, ok = fec.ldpc_decode(rng.normal(size=cw.size), 224)  # noise is no codeword
    assert not ok
    with pytest.raises(ValueError, match="expected 448"):
        fec.ldpc_decode(llr[:-1], 224)
    with pytest.raises(ValueError, match="at least 64"):
        fec.ldpc_encode(bits[:32])


def test_ldpc_codes_kept_for_few_lengths():
    """Headers are not authenticated: a forger may claim every body length in turn, and the receiver builds
    an LDPC code for each (up to 1.7 MB): only the last few stay in memory."""
    for n_bytes in range(28, 60):
        fec.ldpc_encode(np.zeros(8 * n_bytes, dtype=np.uint8))
    assert fec._ldpc.cache_info().currsize <= 8


def test_syndrome_check_leaves_erasures_out():
    """A lost packet's erased soft bits must not make a clean codeword look like random data."""
    rng = np.random.default_rng(3)
    coded = 2.0 * fec.conv_encode(rng.integers(0, 2, 64)) - 1.0
    assert fec.syndrome_weight(coded) == 0.0
    hit = coded.copy()
    hit[40:60] = 0.0
    assert fec.syndrome_weight(hit) == 0.0
    assert fec.syndrome_weight(np.zeros_like(coded)) == 0.0  # nothing known: not ruled out
    noise = rng.normal(size=coded.size)
    noise[40:60] = 0.0
    assert fec.syndrome_weight(noise) > 0.3  # random data still fails the checks it has


def _stream(bits, copies, sigma, lead, rng):
    parts = [rng.normal(size=lead)] + [(2.0 * bits - 1) + rng.normal(0, sigma, bits.size) for _ in range(copies)]
    return np.concatenate(parts)


@pytest.mark.parametrize("sigma,max_copies", [(0.3, 1), (0.8, 3), (1.0, 4)])
def test_receiver_locks_at_any_offset_combining_copies(sigma, max_copies):
    rng = np.random.default_rng(int(sigma * 10))
    key = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()  # fixed key and nonce: the same stream every run
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    lead = int(rng.integers(0, 3000))
    stream = _stream(fb, 6, sigma, lead, rng)
    state = _push_until_open(PayloadReceiver(key), stream)
    assert state.opened is not None and state.authenticated
    assert state.copies <= max_copies
    assert state.bits_to_lock is not None and state.bits_to_lock <= lead + max_copies * fb.size + 160
    assert cosine(state.opened.payload.embedding, EMB) > 0.9999


def test_receiver_with_wrong_key_never_locks_and_says_why():
    rng = np.random.default_rng(5)
    fb = frame_bits(seal(SpeakerPayload(EMB), new_key()))
    rx = PayloadReceiver(new_key())
    state = rx.push(_stream(fb, 4, 0.3, 100, rng))
    assert state.found and state.opened is None
    assert any("authentication failed" in f for f in state.failures)


def test_receiver_ignores_noise_and_garbage():
    rng = np.random.default_rng(9)
    rx = PayloadReceiver(new_key())
    state = rx.push(rng.normal(size=50_000))
    state = rx.push(np.full(100, np.nan))
    assert not state.found and state.opened is None


def test_receiver_locks_on_an_inverted_stream():
    rng = np.random.default_rng(11)
    key = new_key()
    fb = frame_bits(seal(SpeakerPayload(EMB), key))
    rx = PayloadReceiver(key)
    state = rx.push(-_stream(fb, 2, 0.3, 500, rng))
    assert state.opened is not None and state.authenticated


def test_an_altered_payload_in_the_stream_is_rejected_every_time():
    """Each byte of the sealed blob altered in turn (the FEC then faithfully delivers the altered blob)."""
    rng = np.random.default_rng(13)
    key = new_key()
    good = seal(SpeakerPayload(EMB), key)
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 1 << int(rng.integers(0, 8))
        rx = PayloadReceiver(key)
        state = rx.push(_stream(frame_bits(bytes(bad)), 2, 0.3, 100, rng))
        assert state.opened is None, f"byte {i} altered and still accepted"
    rx = PayloadReceiver(key)  # the unaltered blob through the same stream opens (the check above can fail)
    assert rx.push(_stream(frame_bits(good), 2, 0.3, 100, rng)).opened is not None


def test_compact_payload_on_the_shipped_grid():
    from csss_core.payload import GRID_CODE, embedding_grid

    grid = embedding_grid()
    pool = np.load(Path(__file__).resolve().parents[1] / "models" / "pseudo_gan_train_embeddings.npy")
    key = new_key()
    for e in pool[:20]:
        blob = seal(SpeakerPayload(e, b"1234567", compact=True), key)
        opened = open_sealed(blob, key).payload
        assert opened.compact and opened.extra == b"1234567"
        assert cosine(opened.embedding, e) > 0.999  # issue 4's bar for the recovered embedding
        assert np.max(np.abs(opened.embedding - e)) <= 0.5 * grid.step.max() + 1e-6  # inside the grid: half a step
    plain_len = len(SpeakerPayload(pool[0], b"1234567", compact=True).to_bytes())
    assert plain_len == 3 + grid.nbytes + 1 + 7 < len(SpeakerPayload(pool[0], b"1234567").to_bytes()) - 60
    # outside the grid: clipped to its edge, never wrapped around
    far = pool[0].copy()
    far[2] = 1e3
    assert SpeakerPayload.from_bytes(SpeakerPayload(far, compact=True).to_bytes()).embedding[2] < 1e3
    with pytest.raises(PayloadError, match="compact format holds"):
        SpeakerPayload(np.ones(10), compact=True)
    good = SpeakerPayload(pool[0], b"ab", compact=True).to_bytes()
    assert good[2] == GRID_CODE
    for bad in (good[:-1], good + b"x", good[:3], good[:2] + bytes([GRID_CODE])):
        with pytest.raises(PayloadError):
            SpeakerPayload.from_bytes(bad)


def _push_until_open(rx, stream, step=160):
    """Feed ``stream`` to ``rx`` in ``step``-bit pieces until a payload opens; the last state."""
    for i in range(0, stream.size, step):
        state = rx.push(stream[i : i + step])
        if state.opened:
            break
    return state


@pytest.mark.parametrize("offset", [1, 700, 1500, 2700])
def test_receiver_locks_one_frame_length_after_joining_mid_frame(offset):
    # the frame repeats, so the tail of the copy the receiver joined in plus the start of the next one
    # is a whole frame: it opens one frame's length after joining (plus the header after the sync)
    from csss_core.payload import HEADER_CODED, SYNC_BITS

    rng = np.random.default_rng(offset)
    key = bytes(range(32))
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    stream = np.tile(2.0 * fb - 1, 3)[offset:] + rng.normal(0, 0.3, 3 * fb.size - offset)
    state = _push_until_open(PayloadReceiver(key), stream)
    assert state.opened is not None and cosine(state.opened.payload.embedding, EMB) > 0.9999
    assert state.bits_to_lock is not None
    assert state.bits_to_lock <= fb.size + SYNC_BITS + HEADER_CODED + 160
    assert (state.bits_to_lock + offset) % fb.size == 0  # it says where the sender's copies start


def test_receiver_joining_in_another_payloads_tail_still_opens_the_new_one():
    # the bits before the first sync belong to a different (longer) payload: the cyclic attempt combines
    # them and fails; the receiver must keep its anchor and open the new payload from its own copies
    key = bytes(range(32))
    for t in range(12):
        rng = np.random.default_rng(t)
        a = frame_bits(seal(SpeakerPayload(rng.normal(size=256).astype(np.float32)), key))
        b_emb = rng.normal(size=16).astype(np.float32)
        b = frame_bits(seal(SpeakerPayload(b_emb), key))
        tail = int(rng.integers(b.size, a.size - 100))
        stream = np.concatenate([2.0 * a[-tail:] - 1, np.tile(2.0 * b - 1, 4)]) + rng.normal(0, 0.3, tail + 4 * b.size)
        state = _push_until_open(PayloadReceiver(key), stream)
        assert state.opened is not None and cosine(state.opened.payload.embedding, b_emb) > 0.9999
        assert state.bits_to_lock is not None and state.bits_to_lock <= tail + 2 * b.size + 160


@pytest.mark.parametrize("seed", range(4))
def test_lost_packets_in_sync_words_do_not_cost_the_copies(seed):
    """A lost 20 ms packet is 20 erased soft bits at 1000 bit/s: one inside a sync word must not hide
    the frame, and a copy whose whole sync word was lost still counts in the combination (also when the
    first copy's header was taken from the header book: the lost sync word neither confirms nor drops it)."""
    from csss_core.payload import SYNC_BITS

    key = bytes(range(32))
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    rng = np.random.default_rng(seed)
    lead = 500
    stream = _stream(fb, 2, 1.05, lead, rng)  # at this noise one copy does not open, two do
    for erase in ([slice(lead + 10, lead + 30)], [slice(lead + fb.size, lead + fb.size + SYNC_BITS)]):
        s = stream.copy()
        for e in erase:
            s[e] = 0.0
        one = PayloadReceiver(key).push(s[: lead + fb.size + SYNC_BITS])
        assert one.found and one.opened is None  # the first copy's sync found; alone it does not open
        two = PayloadReceiver(key).push(s)
        assert two.opened is not None and two.copies == 2 and cosine(two.opened.payload.embedding, EMB) > 0.9999


def test_a_noisy_copy_is_not_reported_as_a_forgery():
    """Before the lock, a copy whose body does not decode yet says so; "authentication failed" is kept for
    a whole codeword that does not open (another key: what a status line must not confuse with noise)."""
    from csss_core.payload import HEADER_CODED, SYNC_BITS

    key = bytes(range(32))
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    rng = np.random.default_rng(21)
    copy = 2.0 * fb - 1.0
    h = SYNC_BITS + HEADER_CODED
    noisy = copy + np.concatenate([np.zeros(h), rng.normal(0, 2.5, fb.size - h)])  # clean header, lost body
    state = PayloadReceiver(key).push(np.concatenate([rng.normal(size=300), noisy, copy[:100]]))
    assert state.found and state.opened is None and state.failures
    assert "not decoded" in state.failures[-1] and not any("authentication" in f for f in state.failures)
    other = PayloadReceiver(bytes(32)).push(np.concatenate([rng.normal(size=300), copy, copy[:100]]))
    assert other.opened is None and "authentication failed" in other.failures[-1]


def _burst_on_header(stream, start, rng, n=24):
    """Invert ``n`` consecutive received bits of the coded header of the copy starting at ``start``
    (what a fricative under the carrier does to one copy) and return the header's soft bits."""
    from csss_core.payload import HEADER_CODED, SYNC_BITS

    at = start + SYNC_BITS + int(rng.integers(0, HEADER_CODED - n))
    stream[at : at + n] *= -1
    return stream[start + SYNC_BITS : start + SYNC_BITS + HEADER_CODED]


def _decoder_misses(seg):
    bits, _ = fec.viterbi_decode(fec.deinterleave(seg), 8 * HEADER_LEN)
    try:
        parse_header(np.packbits(bits).tobytes())
    except PayloadError:
        return True
    return False


def test_a_header_the_decoder_misses_comes_from_the_header_book_and_the_first_copy_opens():
    """A header carries only its flag and body length: when a burst of errors defeats the Viterbi decoder
    on the first copy's header, the receiver takes the most likely sendable header and opens the payload
    from that copy instead of waiting for the next one's header."""
    rng = np.random.default_rng(31)
    key = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    missed = 0
    for trial in range(6):
        lead = int(rng.integers(0, 500))
        stream = _stream(fb, 2, 0.3, lead, rng)
        if not _decoder_misses(_burst_on_header(stream, lead, rng)):
            continue
        missed += 1
        rx, pushed = PayloadReceiver(key), 0
        while rx.state.opened is None and pushed < stream.size:
            rx.push(stream[pushed : pushed + 8])
            pushed += 8
        assert rx.state.opened is not None and rx.state.authenticated, trial
        # opened once the first copy was in: not after the next copy's sync word and header (204 bits on)
        assert pushed <= lead + fb.size + 8, (trial, pushed - lead - fb.size)
        assert cosine(rx.state.opened.payload.embedding, EMB) > 0.9999
    assert missed >= 3  # the bursts did defeat the decoder (else this test shows nothing)


def test_a_header_from_the_book_is_dropped_when_the_next_sync_word_is_not_where_its_length_says():
    """A decoy: the sync word and a damaged header of another length (taken from the book), then no frame
    of that length. The receiver lets it go one claimed frame later and opens the real payload that came
    meanwhile, instead of staying anchored on the decoy."""
    from csss_core.fec import conv_encode, interleave
    from csss_core.payload import FLAG_SEALED, SYNC, frame_len, header_bytes

    rng = np.random.default_rng(32)
    key = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    decoy_bits = np.concatenate([SYNC, interleave(conv_encode(np.unpackbits(np.frombuffer(
        header_bytes(FLAG_SEALED, 600), np.uint8))))])
    for _ in range(20):
        decoy = (2.0 * decoy_bits - 1) + rng.normal(0, 0.3, decoy_bits.size)
        if _decoder_misses(_burst_on_header(decoy, 0, rng)):
            break
    else:
        raise AssertionError("no burst defeated the decoder")
    rx = PayloadReceiver(key)
    rx.push(np.concatenate([rng.normal(size=50), decoy]))
    assert rx.state.found  # the decoy's header came from the book: the receiver is anchored on it
    stream = np.concatenate([rng.normal(size=300), _stream(fb, 4, 0.3, 0, rng)])
    state = _push_until_open(rx, stream)
    assert state.opened is not None and state.authenticated
    # the decoy held the receiver for at most its claimed frame length (plus the sync word it looked for)
    bound = 50 + decoy.size + frame_len(600) + 64 + fb.size + 160
    assert state.bits_to_lock is not None and state.bits_to_lock <= bound
    assert frame_len(600) > 2 * fb.size  # the decoy did claim a much longer frame



@pytest.mark.parametrize("stretch,quarters", [(600, 5), (1500, 7)])
def test_a_first_copy_that_just_fails_opens_with_the_start_of_the_next_one(stretch, quarters):
    """The cyclic decode is tried again after every quarter frame's worth of bits beyond the first frame: a
    first copy with a stretch of wrong bits (a reverberant or noisy moment) opens once enough of the next
    copy has been added there, instead of after the whole second copy."""
    rng = np.random.default_rng(34)
    key = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    fb = frame_bits(seal(SpeakerPayload(EMB), key, nonce=bytes(12)))
    lead = 41
    stream = _stream(fb, 3, 0.3, lead, rng)
    bad = lead + 250 + np.flatnonzero(rng.random(stretch) < 0.3)
    stream[bad] *= -1  # a stretch of the first copy's body with 30 % of its bits confidently wrong
    rx, pushed = PayloadReceiver(key), 0
    while rx.state.opened is None and pushed < stream.size:
        rx.push(stream[pushed : pushed + 8])
        pushed += 8
    assert rx.state.opened is not None and rx.state.authenticated
    # not before that many quarters of a frame, and well before the whole second copy (2 frames)
    assert lead + (quarters - 1) * fb.size // 4 < pushed <= lead + quarters * fb.size // 4 + 16, pushed - lead
