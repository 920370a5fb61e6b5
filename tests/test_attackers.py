import numpy as np
import pytest

from csss_core.evaluation.attackers import get_attacker, speaker_model
from csss_core.evaluation.metrics import compute_eer
from csss_core.mcadams import mcadams

from .conftest import speech


@pytest.mark.parametrize("name", ["ge2e", "dvector"])
def test_attackers_separate_clearly_different_voices(tiny_corpus, name):
    att = get_attacker(name)
    spk = tiny_corpus.speakers
    models = {s: speaker_model([att.embed(speech(tiny_corpus, s, i)) for i in range(2)]) for s in spk}
    tgt, non = [], []
    for s in spk:
        for i in range(2, 6):
            e = att.embed(speech(tiny_corpus, s, i))
            assert e.shape[0] == 256 and abs(np.linalg.norm(e) - 1) < 1e-6
            for m, v in models.items():
                (tgt if m == s else non).append(float(e @ v))
    assert compute_eer(np.array(tgt), np.array(non)).eer < 0.1
    assert np.mean(tgt) > np.mean(non) + 0.1


@pytest.mark.parametrize("name", ["ge2e", "dvector"])
def test_processing_moves_the_voice_away_from_its_speaker(tiny_corpus, name):
    """Processed-vs-original: the attacker's score drops when the voice is altered."""
    att = get_attacker(name)
    s = "flite_slt"
    enroll = speaker_model([att.embed(speech(tiny_corpus, s, i)) for i in range(2)])
    same, altered = [], []
    for i in range(2, 6):
        x = speech(tiny_corpus, s, i)
        same.append(float(att.embed(x) @ enroll))
        altered.append(float(att.embed(mcadams(x, 16000, 0.55)) @ enroll))
    assert np.mean(altered) < np.mean(same) - 0.02


def test_unknown_attacker():
    with pytest.raises(ValueError, match="known: dvector, ge2e"):
        get_attacker("xvector")
