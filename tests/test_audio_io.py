import numpy as np
import pytest
import soundfile as sf

from csss_core.audio import AudioChunk, AudioError, read_audio, resample, write_audio

CASES = [
    (suffix, fmt, subtype, sr, ch)
    for suffix, fmt, subtype in [(".wav", "WAV", "PCM_16"), (".flac", "FLAC", "PCM_24")]
    for sr, ch in [(44100, 2), (8000, 1), (48000, 6)]
] + [(".ogg", "OGG", "VORBIS", 44100, 2), (".ogg", "OGG", "VORBIS", 22050, 1)]
# (Vorbis remaps and low-passes channels beyond stereo, so 5.1 ogg is not a level test.)


@pytest.mark.parametrize("suffix,fmt,subtype,sr,channels", CASES)
def test_read_any_format_rate_and_channels(tmp_path, suffix, fmt, subtype, sr, channels):
    t = np.arange(sr) / sr
    mono = 0.4 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([mono] * channels, axis=1)
    p = tmp_path / f"x{suffix}"
    sf.write(p, data, sr, format=fmt, subtype=subtype)
    x, out_sr = read_audio(p)
    assert out_sr == 16000
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 2
    # the tone survives: its RMS is about 0.4/sqrt(2)
    assert np.sqrt(np.mean(x[2000:-2000] ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.05)
    y, keep_sr = read_audio(p, sample_rate=None)
    assert keep_sr == sr


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "nope.wav")


def test_garbage_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"RIFF1234WAVEnot really audio" * 10)
    with pytest.raises(AudioError, match="not a readable audio file"):
        read_audio(p)


def test_text_file_named_flac(tmp_path):
    p = tmp_path / "notes.flac"
    p.write_text("hello")
    with pytest.raises(AudioError):
        read_audio(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty"):
        read_audio(p)


def test_nan_samples(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.zeros(1000, dtype=np.float32)
    x[10] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(p)


def test_absurd_sample_rate(tmp_path):
    p = tmp_path / "slow.wav"
    sf.write(p, np.zeros(100), 1000)
    with pytest.raises(AudioError, match="sample rate"):
        read_audio(p)


def test_write_roundtrip_and_errors(tmp_path):
    x = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    write_audio(tmp_path / "a.wav", x, 16000)
    y, _ = read_audio(tmp_path / "a.wav")
    assert np.max(np.abs(x - y)) < 1e-4
    with pytest.raises(AudioError, match="unsupported"):
        write_audio(tmp_path / "a.mp4", x, 16000)
    with pytest.raises(AudioError, match="empty"):
        write_audio(tmp_path / "b.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="mono"):
        write_audio(tmp_path / "c.wav", np.zeros((10, 2), np.float32), 16000)


def test_resample_preserves_tone_frequency():
    sr = 48000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(x, 48000, 16000)
    assert len(y) == 16000
    spec = np.abs(np.fft.rfft(y))
    assert np.argmax(spec) == 1000  # 1 Hz bins over one second


def test_chunk_validation():
    with pytest.raises(ValueError):
        AudioChunk(np.zeros((2, 2), np.float32), 16000)
    with pytest.raises(ValueError):
        AudioChunk(np.zeros(10, np.float32), 10)
    c = AudioChunk(np.zeros(320, np.float64), 16000, 0.02)
    assert c.samples.dtype == np.float32 and c.duration == pytest.approx(0.02)
