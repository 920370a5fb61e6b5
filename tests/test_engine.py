"""The call engines offline: sender -> real Opus -> receiver, in 20 ms chunks at 48 kHz."""

import numpy as np
import pytest
import torch

from csss_core.anonymizer import Anonymizer
from csss_core.audio import resample
from csss_core.channel import opus_roundtrip
from csss_core.engine import ReceiverEngine, SenderEngine
from csss_core.payload import new_key
from tests.conftest import voice_clip

FR = 960


def _run(engine, x: np.ndarray, chunk: int = FR) -> np.ndarray:
    return np.concatenate([engine.process(x[i : i + chunk]) for i in range(0, len(x), chunk)])


@pytest.fixture(scope="module")
def call_audio(tiny_corpus):
    torch.set_num_threads(1)
    x16 = voice_clip(tiny_corpus, "fest_ked")
    x48 = resample(x16, 16000, 48000)
    key = new_key()
    sender = SenderEngine(Anonymizer(asv_check=False), key, seed=11)
    y = _run(sender, x48)
    return x16, x48, key, sender, y, opus_roundtrip(y, 48000, 96_000)


def _asv():
    from resemblyzer import VoiceEncoder, preprocess_wav

    ve = VoiceEncoder(device="cpu", verbose=False)
    return lambda a: ve.embed_utterance(preprocess_wav(resample(a, 48000, 16000), source_sr=16000))


def test_receiver_passes_the_pseudo_voice_then_switches_to_the_real_one(call_audio):
    x16, x48, key, sender, y, yc = call_audio
    assert len(y) == len(x48)
    assert sender.status.identity_frozen and sender.status.embedding_since_s is not None
    rx = ReceiverEngine(Anonymizer(asv_check=False), key)
    z = _run(rx, yc)
    assert len(z) == len(yc)
    st = rx.status
    assert st.locked and st.authenticated, st.reason
    assert st.seconds_to_lock is not None and st.seconds_to_lock < len(x16) / 16000
    # the identity was learned live, so its payload began mid-stream; the receiver placed the start (and
    # with it the acquisition preamble) from the payload's start field: at that point plus the resamplers'
    # delay, not at a frame boundary of its own timeline
    since = int(sender.status.embedding_since_s * 16000)
    assert since > 16000 and rx._unembed is not None
    assert since <= rx._unembed.payload_start <= since + 800
    # before the lock the output is exactly the pass-through path (a receiver that has no key)
    plain = _run(ReceiverEngine(Anonymizer(asv_check=False), None), yc)
    lock = int(st.seconds_to_lock * 48000)
    np.testing.assert_array_equal(z[: lock - 2 * FR], plain[: lock - 2 * FR])
    after = slice(lock + 48000, None)
    assert np.max(np.abs(z[after] - plain[after])) > 0.05
    emb = _asv()
    e_orig = emb(x48)
    cos_pseudo = float(e_orig @ emb(plain[after]))
    cos_recon = float(e_orig @ emb(z[after]))
    assert cos_recon > cos_pseudo + 0.02, (cos_recon, cos_pseudo)
    # no jump at the switch: the cross-fade keeps sample-to-sample steps within the signal's own range
    around = z[lock - 4800 : lock + 48000]
    assert np.max(np.abs(np.diff(around))) < 4 * np.max(np.abs(np.diff(plain[lock - 4800 : lock + 48000]))) + 1e-3


def test_wrong_key_never_locks_and_keeps_passing_through(call_audio):
    _, _, _, _, _, yc = call_audio
    rx = ReceiverEngine(Anonymizer(asv_check=False), new_key())
    z = _run(rx, yc)
    plain = _run(ReceiverEngine(Anonymizer(asv_check=False), None), yc)
    assert not rx.status.locked
    assert "authentication failed" in rx.status.reason
    np.testing.assert_array_equal(z, plain)


def test_a_payload_replayed_from_another_call_or_bit_flipped_is_rejected(call_audio):
    """Audio recorded in call 1 (same pre-shared key file, same parties) played into call 2: never opens."""
    from csss_core.keys import KeyAgreement

    _, x48, _, _, _, _ = call_audio
    psk = bytes(range(32))
    keys = []
    for _ in range(2):
        a, b = KeyAgreement(True, psk=psk), KeyAgreement(False, psk=psk)
        b.receive(a.receive(b.receive(a.start())))
        keys.append((a.keys, b.keys))
    (a1, b1), (_, b2) = keys
    sender = SenderEngine(Anonymizer(asv_check=False), a1.send, seed=11)
    recorded = opus_roundtrip(_run(sender, x48), 48000, 96_000)
    genuine = ReceiverEngine(Anonymizer(asv_check=False), b1.receive)
    _run(genuine, recorded)
    assert genuine.status.locked and genuine.status.authenticated  # the recording itself is sound
    replay = ReceiverEngine(Anonymizer(asv_check=False), b2.receive)
    _run(replay, recorded)
    assert not replay.status.locked and "authentication failed" in replay.status.reason


def test_lost_packets_filled_by_the_call_are_erasures_for_the_extractor(call_audio):
    """10 % of 20 ms packets lost, filled in as the call does (GapFiller): the identity still locks."""
    from client.media import GapFiller

    x16, _, key, _, _, yc = call_audio
    lost = np.random.default_rng(4).random(len(yc) // FR) < 0.10
    g, rx = GapFiller(), ReceiverEngine(Anonymizer(asv_check=False), key)
    out, filled_n = [], 0
    for k in range(len(yc) // FR):
        if lost[k]:
            continue
        for pcm, filled in g.push_marked(k * FR, yc[k * FR : (k + 1) * FR]):
            out.append(rx.process(pcm, filled))
            filled_n += len(pcm) if filled else 0
    assert filled_n == g.concealed > 0.05 * len(yc)
    assert sum(len(o) for o in out) == (len(yc) // FR - int(np.argmax(~lost))) * FR  # the timeline is kept
    st = rx.status
    assert st.locked and st.authenticated, rx.explain()
    assert st.seconds_to_lock < len(x16) / 16000 - 3.0


def test_sender_waits_for_the_key_before_sealing(tiny_corpus):
    x48 = resample(voice_clip(tiny_corpus, "flite_slt", repeat=1)[: 16000 * 6], 16000, 48000)
    s = SenderEngine(Anonymizer(asv_check=False), None, seed=3)
    _run(s, x48[: 48000 * 5])
    assert not s.status.identity_frozen and s.status.speech_seconds >= 3.0
    s.set_key(new_key())
    _run(s, x48[48000 * 5 :])
    assert s.status.identity_frozen


@pytest.mark.parametrize("chunk", [441, 1000, 4800])
def test_any_chunk_size_gives_as_many_samples_back(tiny_corpus, chunk):
    x48 = resample(voice_clip(tiny_corpus, "flite_awb", repeat=1)[:32000], 16000, 48000)
    s = SenderEngine(Anonymizer(asv_check=False), new_key(), seed=5)
    r = ReceiverEngine(Anonymizer(asv_check=False), new_key())
    for i in range(0, len(x48), chunk):
        part = x48[i : i + chunk]
        assert len(s.process(part)) == len(part)
        assert len(r.process(part)) == len(part)
