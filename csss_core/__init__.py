"""CSSS engine: audio types, file I/O, resampling, streaming stages and evaluation.

This package knows nothing of networking, FastAPI, aiortc or sound cards; the
``client`` and ``server`` packages wrap it.
"""

from csss_core.audio import (
    INTERNAL_SAMPLE_RATE,
    AudioChunk,
    AudioError,
    read_audio,
    resample,
    write_audio,
)

__all__ = [
    "INTERNAL_SAMPLE_RATE",
    "AudioChunk",
    "AudioError",
    "read_audio",
    "resample",
    "write_audio",
]

__version__ = "0.1.0"
