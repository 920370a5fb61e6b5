import hashlib

import pytest

from csss_core.corpus import VOICES, Corpus, build_corpus, sentences, voice_by_name


def test_builder_is_deterministic(tmp_path):
    voices = [voice_by_name(v) for v in ("flite_kal16", "fest_kal", "esp_us_f3")]
    a = build_corpus(tmp_path / "a", voices, n_sentences=3, n_enroll=1)
    b = build_corpus(tmp_path / "b", voices, n_sentences=3, n_enroll=1)
    assert [u.sha256 for u in a] == [u.sha256 for u in b]
    for u in a:
        assert hashlib.sha256((tmp_path / "a" / u.path).read_bytes()).hexdigest() == u.sha256
    assert len({u.sha256 for u in a}) == len(a)  # every file differs
    c = Corpus.load(tmp_path / "a")
    assert c.speakers == ["flite_kal16", "fest_kal", "esp_us_f3"]
    assert len(c.split("enroll")) == 3 and len(c.split("trial")) == 6
    assert all(u.duration > 1.0 for u in c.utterances)


def test_design_meets_the_corpus_spec():
    assert len(VOICES) >= 12
    assert len({v.speaker for v in VOICES}) == len(VOICES)
    assert {v.engine for v in VOICES} == {"espeak-ng", "flite", "festival"}
    assert len(sentences()) >= 20


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="known"):
        voice_by_name("nobody")
    with pytest.raises(ValueError):
        build_corpus(tmp_path, VOICES[:1], n_sentences=2, n_enroll=2)
    with pytest.raises(FileNotFoundError):
        Corpus.load(tmp_path / "missing")


def test_subset(tiny_corpus):
    s = tiny_corpus.subset(max_speakers=2, max_trials=1)
    assert s.speakers == tiny_corpus.speakers[:2]
    assert len(s.split("trial")) == 2
    assert len(s.split("enroll")) == 4
