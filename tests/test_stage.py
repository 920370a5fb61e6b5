import numpy as np
import pytest

from csss_core.audio import AudioChunk, chunk_samples, resample
from csss_core.stage import Pipeline, Stage, StreamingResampler, run_streaming, streaming_offline_difference


@pytest.mark.parametrize("in_sr,out_sr", [(48000, 16000), (16000, 48000), (44100, 16000)])
def test_streaming_resampler_equals_offline_delayed(in_sr, out_sr):
    rng = np.random.default_rng(0)
    x = rng.normal(size=in_sr // 2).astype(np.float32) * 0.3
    chunk = chunk_samples(in_sr) if in_sr % 50 == 0 else 441
    stream = run_streaming(StreamingResampler(in_sr, out_sr), x, in_sr, chunk)
    offline = resample(x, in_sr, out_sr)
    st = StreamingResampler(in_sr, out_sr)
    d = st.delay_samples
    assert d is not None
    n = min(len(stream) - d, len(offline)) - 200  # the offline tail sees zeros the stream has not got yet
    assert np.max(np.abs(stream[d : d + n] - offline[:n])) < 1e-5
    assert st.latency_s == pytest.approx(d / out_sr)
    assert st.latency_s < 0.002


def test_streaming_resampler_chunk_size_does_not_matter():
    rng = np.random.default_rng(1)
    x = rng.normal(size=9600).astype(np.float32)
    diff = streaming_offline_difference(lambda: StreamingResampler(48000, 16000), x, 48000, 960)
    assert diff < 1e-6
    diff_odd = streaming_offline_difference(lambda: StreamingResampler(48000, 16000), x, 48000, 77)
    assert diff_odd < 1e-6


class _ForgetfulSmoother:
    """A one-pole smoother that (wrongly) forgets its state at every chunk."""

    latency_s = 0.0

    def process(self, chunk: AudioChunk) -> AudioChunk:
        y = np.zeros_like(chunk.samples)
        acc = 0.0
        for i, v in enumerate(chunk.samples):
            acc = 0.9 * acc + 0.1 * float(v)
            y[i] = acc
        return AudioChunk(y, chunk.sample_rate, chunk.timestamp)

    def reset(self) -> None:
        pass


def test_helper_catches_a_stage_that_drops_state():
    x = np.ones(1600, dtype=np.float32)
    assert isinstance(_ForgetfulSmoother(), Stage)
    assert streaming_offline_difference(_ForgetfulSmoother, x, 16000, 320) > 0.5


def test_helper_catches_length_mismatch():
    with pytest.raises(AssertionError):
        streaming_offline_difference(lambda: StreamingResampler(16000, 16000 * 3), np.ones(320, np.float32),
                                     16000, 320, offline=lambda v: v)


def test_pipeline_checks_chunks_and_sums_latency():
    p = Pipeline([StreamingResampler(16000, 48000), StreamingResampler(48000, 16000)], 16000, 320)
    assert p.latency_s == pytest.approx(StreamingResampler(16000, 48000).latency_s * 2)
    out = p.process(AudioChunk(np.zeros(320, np.float32), 16000))
    assert out.sample_rate == 16000
    with pytest.raises(ValueError, match="Hz"):
        p.process(AudioChunk(np.zeros(320, np.float32), 48000))
    with pytest.raises(ValueError, match="samples"):
        p.process(AudioChunk(np.zeros(100, np.float32), 16000))
    p.reset()


def test_chunk_samples():
    assert chunk_samples(16000) == 320
    assert chunk_samples(48000) == 960
    with pytest.raises(ValueError):
        chunk_samples(44101)
