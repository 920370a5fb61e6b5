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
    with pytest.raises(ValueError, match="known: dvector, ge2e, ecapa:FOLDER"):
        get_attacker("xvector")


ECAPA_YAML = """
pretrained_path: {folder}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 40
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 40
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    collect_in: !ref <pretrained_path>
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


ECAPA_PROBE = """
import json, sys
import numpy as np
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from csss_core.audio import read_audio
from csss_core.evaluation.attackers import get_attacker

folder, a_wav, c_wav = sys.argv[1:4]
torch.manual_seed(0)
model = ECAPA_TDNN(40, channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                   attention_channels=16, lin_neurons=24)
torch.save(model.state_dict(), folder + "/embedding_model.ckpt")
att = get_attacker("ecapa:" + folder)
out = {"a": att.embed(read_audio(a_wav)[0]).tolist(), "b": att.embed(read_audio(a_wav)[0]).tolist(),
       "c": att.embed(read_audio(c_wav)[0]).tolist()}
try:
    get_attacker("ecapa:" + folder + "/nothing")
except ValueError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def test_ecapa_backend_loads_a_local_randomly_initialised_model(tmp_path, tiny_corpus):
    # SpeechBrain registers lazy modules that break other libraries' module scans (hypothesis), so
    # the backend runs in its own process here.
    import json
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import speechbrain.inference.speaker"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("speechbrain with a loadable torchaudio is not installed (optional: README, ECAPA attacker)")
    (tmp_path / "hyperparams.yaml").write_text(ECAPA_YAML.format(folder=tmp_path))
    a_wav = tiny_corpus.path(tiny_corpus.utterances[0])
    c_wav = tiny_corpus.path([u for u in tiny_corpus.utterances if u.speaker == "esp_us_m1"][0])
    p = subprocess.run([sys.executable, "-c", ECAPA_PROBE, str(tmp_path), str(a_wav), str(c_wav)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    a, b, c = (np.array(out[k]) for k in "abc")
    assert a.shape == (24,) and abs(np.linalg.norm(a) - 1) < 1e-6
    assert np.allclose(a, b) and not np.allclose(a, c)
    assert "hyperparams.yaml" in out["error"]
