import json
import subprocess
import sys

import numpy as np
import pytest

from csss_core.anonymizer import Anonymizer
from csss_core.audio import read_audio, write_audio
from csss_core.channel import opus_roundtrip
from csss_core.evaluation.attackers import get_attacker
from csss_core.payload import new_key
from csss_core.sealed_voice import extract_identity, hide_identity, reconstruct

from .conftest import speech


@pytest.fixture(scope="module")
def long_speech(tiny_corpus):
    return np.concatenate([speech(tiny_corpus, "fest_ked", i) for i in range(6)])  # about 14 s


@pytest.fixture(scope="module")
def anon():
    return Anonymizer()


def _cos(att, a, b):
    return float(att.embed(a) @ att.embed(b))


def test_hidden_identity_survives_opus_and_reconstructs_closer_to_the_speaker(long_speech, anon):
    key = new_key()
    r = anon.anonymize(long_speech, seed=21)
    y = hide_identity(r, key)
    z = opus_roundtrip(y, bitrate=96_000)
    ext = extract_identity(z, key)
    assert ext.found and ext.authenticated and ext.seconds_to_lock is not None
    assert ext.seconds_to_lock < 12.0
    cos = float(ext.embedding @ r.source / np.linalg.norm(ext.embedding) / np.linalg.norm(r.source))
    assert cos > 0.999
    assert ext.seed == 21 and ext.draw_index == r.draw_index
    back = reconstruct(z, ext, anon)
    ge2e = get_attacker("ge2e")
    assert _cos(ge2e, long_speech, back) > _cos(ge2e, long_speech, z) + 0.05


def test_wrong_key_no_payload_and_forgery_are_refused(long_speech, anon):
    key = new_key()
    y = hide_identity(anon.anonymize(long_speech, seed=3), key)
    wrong = extract_identity(y, new_key())
    assert wrong.found and not wrong.authenticated and wrong.embedding is None
    assert "authentication failed" in wrong.reason
    nothing = extract_identity(long_speech, key)
    assert not nothing.found and nothing.embedding is None
    # a forger without the key hides its own (unsealed) payload: a keyed receiver refuses it
    forged = hide_identity(anon.anonymize(long_speech, seed=4), None)
    f = extract_identity(forged, key)
    assert f.embedding is None and "not sealed" in f.reason
    with pytest.raises(ValueError, match="cannot reconstruct"):
        reconstruct(y, wrong, anon)


def test_a_file_made_with_payload_version_1_is_named_as_such(long_speech, anon):
    """Files sealed before the body's LDPC code (version 1: the convolutional code on the body too) do not
    open with this build: the receiver says why instead of "no hidden payload found"."""
    import struct

    from csss_core.fec import conv_encode, interleave
    from csss_core.payload import MAGIC, SYNC, _bits, crc16, seal
    from csss_core.payload import SpeakerPayload as P
    from csss_core.sealed_voice import HIDDEN_CHANNEL
    from csss_core.stego_ss import embed

    key = new_key()
    sealed = seal(P(anon.anonymize(long_speech, seed=5).source), key)
    head6 = MAGIC + bytes([1]) + sealed[3:6]
    old = head6 + struct.pack(">H", crc16(head6))
    frame = np.concatenate([SYNC, interleave(conv_encode(_bits(old))), interleave(conv_encode(_bits(sealed[8:])))])
    ext = extract_identity(opus_roundtrip(embed(long_speech, frame, HIDDEN_CHANNEL), bitrate=96_000), key)
    assert ext.embedding is None and "version 1" in ext.reason and "another csss version" in ext.reason
    assert ext.found  # a payload is there, of another format
    assert extract_identity(long_speech, key).reason == "no hidden payload found"


def _csss(*args):
    return subprocess.run([sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_round_trip(long_speech, tmp_path):
    src = tmp_path / "in.wav"
    write_audio(src, long_speech, 16000)
    key, other = tmp_path / "k.key", tmp_path / "o.key"
    assert _csss("keygen", str(key)).returncode == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert _csss("keygen", str(key)).returncode == 1  # no silent overwrite
    assert _csss("keygen", str(other)).returncode == 0
    anon_wav = tmp_path / "anon.wav"
    p = _csss("anonymize", str(src), str(anon_wav), "--seed", "9", "--key-file", str(key))
    assert p.returncode == 0, p.stderr
    e = _csss("extract", str(anon_wav), "--key-file", str(key))
    assert e.returncode == 0, e.stderr
    obj = json.loads(e.stdout)
    assert obj["found"] and obj["authenticated"] and len(obj["embedding"]) == 186
    assert 0 < obj["seconds_to_lock"] < 12
    rec = tmp_path / "rec.wav"
    assert _csss("reconstruct", str(anon_wav), str(rec), "--key-file", str(key)).returncode == 0
    assert abs(len(read_audio(rec)[0]) - len(long_speech)) <= 1
    bad = _csss("extract", str(anon_wav), "--key-file", str(other))
    assert bad.returncode == 1 and json.loads(bad.stdout)["authenticated"] is False
    bad_rec = tmp_path / "bad.wav"
    r = _csss("reconstruct", str(anon_wav), str(bad_rec), "--key-file", str(other))
    assert r.returncode == 1 and "authentication failed" in r.stderr and not bad_rec.exists()
    assert len(r.stderr.strip().splitlines()) == 1
    notkey = tmp_path / "notkey"
    notkey.write_text("hello")
    assert "not a key file" in _csss("extract", str(anon_wav), "--key-file", str(notkey)).stderr


def test_receiver_matched_to_the_sender_reconstructs_closer_than_a_plain_one(long_speech, anon):
    # same sender, key and seed through the real Opus channel; only the receiver's analysis differs
    from csss_core.roundtrip import figures, roundtrip

    key = bytes(range(32))
    got = {}
    for matched in (False, True):
        rt = roundtrip(long_speech, key, seed=8, anonymizer=anon, matched=matched)
        got[matched] = figures(long_speech, rt, quality=False)
    k = "ge2e_cos_original_vs_reconstructed_after_lock"
    assert got[True][k] > got[False][k] + 0.02, got
    assert got[True][k] > got[True]["ge2e_cos_original_vs_anonymized_after_lock"] + 0.1, got
