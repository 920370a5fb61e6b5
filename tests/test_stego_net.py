"""The paper's steganography networks: shapes, the graph, streaming, and the shipped model end to end."""

import json
import shutil

import numpy as np
import pytest
import torch

from csss_core.audio import AudioChunk
from csss_core.channel import opus_roundtrip
from csss_core.evaluation.metrics import snr_db
from csss_core.payload import SpeakerPayload, frame_bits, new_key, seal
from csss_core.stage import streaming_offline_difference
from csss_core.stego_net import (
    CARD,
    MODEL_DIR,
    NetEmbedStage,
    StegoNet,
    StegoNetConfig,
    cell_layout,
    embed_net,
    extract_net,
    frame_graph,
    load_stego_net,
    normalized_adjacency,
)

from .conftest import speech

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shipped() -> StegoNet:
    return load_stego_net()


def _speech(corpus, seconds):
    parts = [speech(corpus, s, i) for i in range(6) for s in corpus.speakers]
    x = np.concatenate(parts)
    return x[: int(seconds * 16000)]


@pytest.mark.parametrize("graph", [True, False])
def test_network_shapes_and_graph_switch(graph):
    cfg = StegoNetConfig(graph=graph)
    net = StegoNet(cfg).eval()
    x = torch.randn(3, cfg.block) * 0.05
    bits = torch.randint(0, 2, (3, cfg.bits_per_block))
    with torch.inference_mode():
        y = net.embed(x, bits)
        logits = net.extract(y)
    assert y.shape == x.shape and logits.shape == (3, cfg.bits_per_block)
    assert (net.encoder.graph is not None) == graph and (net.decoder.graph is not None) == graph
    # the residual sits snr_db under the block's level
    r = (y - x).pow(2).mean(dim=1)
    level = x.pow(2).mean(dim=1)
    assert torch.allclose(10 * torch.log10(level / r), torch.full((3,), cfg.snr_db), atol=0.01)
    owner, sign = cell_layout(cfg)
    counts = np.bincount(owner.numpy().ravel(), minlength=cfg.bits_per_block)
    assert owner.shape == (cfg.frames, cfg.bins) and counts.max() - counts.min() <= 1
    assert set(np.unique(sign.numpy())) == {-1.0, 1.0}


def test_gcn_adjacency_normalization():
    a = torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])
    got = normalized_adjacency(a)
    deg = torch.tensor([2.0, 3, 2])
    want = (a + torch.eye(3)) / torch.sqrt(deg[:, None] * deg[None, :])
    assert torch.allclose(got, want)
    feats = torch.randn(2, 9, 20)
    g = frame_graph(feats, knn=2)
    assert torch.equal(g, g.transpose(1, 2))
    assert torch.all(torch.diagonal(g, dim1=1, dim2=2) == 0)
    assert torch.all(torch.diagonal(g, offset=1, dim1=1, dim2=2) == 1)  # temporal neighbours
    assert torch.all(g.sum(dim=2) >= 2)  # at least one similarity edge beyond the chain's ends
    ev = torch.linalg.eigvalsh(normalized_adjacency(g))
    assert ev.max() <= 1.0 + 1e-5 and ev.min() >= -1.0 - 1e-5


def test_streaming_embed_equals_offline(tiny_corpus):
    net = StegoNet(StegoNetConfig()).eval()
    x = speech(tiny_corpus, "fest_ked", 0)[: 320 * 40]
    bits = np.random.default_rng(0).integers(0, 2, 77).astype(np.uint8)
    n = net.cfg.block

    def delayed(v):
        return np.concatenate([np.zeros(n, np.float32), embed_net(v, bits, net)])[: len(v)]

    diff = streaming_offline_difference(lambda: NetEmbedStage(bits, net), x, 16000, 320, offline=delayed)
    assert diff < 1e-5
    st = NetEmbedStage(bits, net)
    assert st.latency_s == n / 16000 and len(st.process(AudioChunk(x[:320], 16000))) == 320
    with pytest.raises(ValueError):
        st.process(AudioChunk(x[:480], 24000))


def test_shipped_model_recovers_sealed_payload(tiny_corpus, shipped):
    # the shipped network's raw bit error rate is about 15 %: the frame needs several copies
    x = _speech(tiny_corpus, 50)
    key = new_key()
    emb = np.random.default_rng(1).normal(size=186).astype(np.float32)
    bits = frame_bits(seal(SpeakerPayload(emb, b"\x01\x02\x03\x04\x05\x06"), key))
    y = embed_net(x, bits, shipped)
    assert snr_db(x, y) > 30.0
    lead = np.random.default_rng(2).normal(0, 1e-4, 777).astype(np.float32)  # unknown time offset
    for z in (y, opus_roundtrip(y, bitrate=96_000, seed=3)):
        ex = extract_net(np.concatenate([lead, z]), key, shipped)
        state = ex.receiver.state
        assert state.opened is not None and state.authenticated
        got = state.opened.payload.embedding
        assert float(got @ emb / np.linalg.norm(got) / np.linalg.norm(emb)) > 0.999
        assert state.opened.payload.extra == b"\x01\x02\x03\x04\x05\x06"
        assert ex.seconds_to_lock is not None and ex.seconds_to_lock < 50.0
    wrong = extract_net(np.concatenate([lead, y]), new_key(), shipped).receiver.state
    assert wrong.opened is None and not wrong.authenticated


def test_carrier_without_payload_never_opens(tiny_corpus, shipped):
    x = _speech(tiny_corpus, 8)
    state = extract_net(x, new_key(), shipped).receiver.state
    assert state.opened is None


def test_tampered_weights_are_refused(tmp_path):
    card = json.loads((MODEL_DIR / CARD).read_text())
    src = MODEL_DIR / card["file"]
    good = tmp_path / "good.pt"
    shutil.copy(src, good)
    assert isinstance(load_stego_net(good, sha256=card["sha256"]), StegoNet)
    bad = tmp_path / "bad.pt"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="sha256"):
        load_stego_net(bad, sha256=card["sha256"])
