import hashlib
import json

import numpy as np
import pytest
import torch

from csss_core.anonymizer import Anonymizer
from csss_core.audio import AudioError
from csss_core.converter import ConverterStage, FrameMapper, Offsets, convert
from csss_core.evaluation.attackers import get_attacker
from csss_core.pseudo_speaker import load_pseudo_speaker_model, train_wgan_gp
from csss_core.speaker import MODEL_DIR, SpeakerEmbedding, load_codebook
from csss_core.stage import run_streaming
from csss_core.vocoder import DELAY, analyze

from .conftest import speech


@pytest.fixture(scope="module")
def anon():
    return Anonymizer()


def _cos(a, b):
    return float(a @ b)


def test_shipped_models_match_their_cards():
    for card in ("codebook.json", "pseudo_gan.json"):
        c = json.loads((MODEL_DIR / card).read_text())
        assert hashlib.sha256((MODEL_DIR / c["file"]).read_bytes()).hexdigest() == c["sha256"]
    cb = load_codebook()
    assert load_pseudo_speaker_model().dim == cb.dim


def test_embedding_is_stable_for_a_speaker(tiny_corpus, anon):
    spk = tiny_corpus.speakers
    e = {s: [anon.embed_speaker(speech(tiny_corpus, s, i)).to_vector() for i in (0, 1)] for s in spk}
    within = np.mean([np.linalg.norm(e[s][0] - e[s][1]) for s in spk])
    between = np.mean([np.linalg.norm(e[a][0] - e[b][1]) for a in spk for b in spk if a != b])
    assert within < 0.6 * between


def test_anonymize_replaces_the_voice_and_keeps_words_and_prosody(tiny_corpus, anon):
    ge2e = get_attacker("ge2e")
    x = speech(tiny_corpus, "fest_ked", 2)
    r = anon.anonymize(x, seed=11)
    assert len(r.audio) == len(x)
    enroll = ge2e.embed(speech(tiny_corpus, "fest_ked", 0))
    assert _cos(ge2e.embed(r.audio), enroll) < _cos(ge2e.embed(x), enroll) - 0.1
    assert r.asv_distance is not None and (r.asv_distance >= 0.3 or r.redraws == 16)
    # the same seed gives the same pseudo-voice and output; another seed another voice
    r2 = anon.anonymize(x, seed=11)
    assert np.array_equal(r.pseudo, r2.pseudo) and np.allclose(r.audio, r2.audio)
    assert not np.array_equal(anon.anonymize(x, seed=12).pseudo, r.pseudo)
    # the F0 contour is kept (its shape, not its level)
    fx, fy = analyze(x).f0.numpy(), analyze(r.audio).f0.numpy()
    both = (fx > 0) & (fy > 0)
    assert np.corrcoef(np.log(fx[both]), np.log(fy[both]))[0, 1] > 0.7


def test_conversion_is_invertible_given_the_embeddings(tiny_corpus, anon):
    ge2e = get_attacker("ge2e")
    x = speech(tiny_corpus, "flite_slt", 3)
    r = anon.anonymize(x, seed=5)
    cb = anon.cb
    src = SpeakerEmbedding.from_vector(r.source, cb.k)
    pseudo = SpeakerEmbedding.from_vector(r.pseudo, cb.k)
    back = convert(r.audio, FrameMapper(cb, pseudo, src, r.offsets.inverse(), undo=True))
    enroll = ge2e.embed(speech(tiny_corpus, "flite_slt", 0))
    assert _cos(ge2e.embed(back), enroll) > _cos(ge2e.embed(r.audio), enroll) + 0.1


def test_undo_mapper_restores_f0_exactly(tiny_corpus, anon):
    # the sender adds its pitch offset after mapping log-F0; the receiver's inverse takes it off first,
    # so the pair is exact even when the two speakers' log-F0 spreads differ
    x = speech(tiny_corpus, "fest_ked", 1)
    fr = analyze(x)
    src = anon.embed_speaker(x)
    tgt = SpeakerEmbedding.from_vector(anon.gan.draw(4, 2), anon.cb.k)
    assert abs(tgt.logf0_std / src.logf0_std - 1) > 0.05
    off = Offsets(1.07, 0.9)
    there = FrameMapper(anon.cb, src, tgt, off)(fr)
    voiced = fr.f0 > 0
    back = FrameMapper(anon.cb, tgt, src, off.inverse(), undo=True)(there)
    assert float((back.f0[voiced] / fr.f0[voiced] - 1).abs().max()) < 1e-9
    assert torch.allclose(back.power, fr.power)
    naive = FrameMapper(anon.cb, tgt, src, off.inverse())(there)  # the offset applied after the mapping
    expect = 1.07 ** (src.logf0_std / tgt.logf0_std - 1)
    assert float(torch.median(naive.f0[voiced] / fr.f0[voiced])) == pytest.approx(expect, rel=1e-6)


def test_converter_stage_streams_like_offline(tiny_corpus, anon):
    x = speech(tiny_corpus, "esp_us_m1", 1)[:16000]
    src = anon.embed_speaker(x)
    tgt = SpeakerEmbedding.from_vector(anon.gan.sample(3)[0], anon.cb.k)
    mapper = FrameMapper(anon.cb, src, tgt, Offsets(1.05, 0.9))
    offline = convert(x, mapper)
    st = ConverterStage(mapper)
    streamed = run_streaming(st, np.concatenate([x, np.zeros(640, np.float32)]), 16000, 320)
    assert np.max(np.abs(streamed[DELAY : DELAY + len(x)] - offline)) < 1e-5
    assert st.latency_s <= 0.06


def test_pitch_offset_moves_f0(tiny_corpus, anon):
    x = speech(tiny_corpus, "flite_awb", 1)
    src = anon.embed_speaker(x)
    y = convert(x, FrameMapper(anon.cb, src, src, Offsets(pitch=1.2)))
    fx, fy = analyze(x).f0.numpy(), analyze(y).f0.numpy()
    both = (fx > 0) & (fy > 0)
    assert np.median(fy[both] / fx[both]) == pytest.approx(1.2, rel=0.05)


def test_gan_sampling_is_seeded_and_redraws(anon):
    gan = anon.gan
    a, _ = gan.sample(7)
    b, _ = gan.sample(7)
    assert np.array_equal(a, b)
    calls = []

    def reject_first_three(v):
        calls.append(v)
        return len(calls) > 3

    _, redraws = gan.sample(8, reject_first_three)
    assert redraws >= 3
    with pytest.raises(RuntimeError):
        gan.sample(9, lambda v: False, max_draws=4)


def test_wgan_gp_learns_a_shifted_distribution():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 0.5, size=(200, 6))
    model, curve = train_wgan_gp(data, steps=300, lr=5e-4)
    gen = model.generate(np.random.default_rng(1), 500)
    assert np.abs(gen.mean(axis=0) - 3.0).max() < 0.5
    assert len(curve) == 6


def test_silence_and_tiny_input_give_clear_errors(anon):
    with pytest.raises(AudioError, match="no speech"):
        anon.embed_speaker(np.zeros(16000, np.float32))
    with pytest.raises(AudioError, match="at least"):
        anon.embed_speaker(np.zeros(100, np.float32))
    with pytest.raises(ValueError):
        SpeakerEmbedding.from_vector(np.zeros(5), 8)
