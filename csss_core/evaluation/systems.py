"""Systems under test: anything that maps a wav to a wav.

A system is named on the command line as one of
``identity``, ``mcadams``, ``chimera`` (built in), ``cmd:TEMPLATE`` (a shell
command with ``{in}``, ``{out}`` and ``{seed}`` placeholders), or
``py:MODULE:FUNCTION`` (a callable ``f(samples, sample_rate, seed) -> samples``).
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, read_audio, write_audio
from csss_core.mcadams import draw_alpha, mcadams


class System(Protocol):
    """A wav-to-wav system: 16 kHz mono in, 16 kHz mono out."""

    name: str
    seeded: bool  # False: the output does not depend on the seed (computed once per utterance)

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Process one utterance with the pseudo-voice/key chosen by ``seed``."""
        ...


class IdentitySystem:
    """Returns its input: the 'Original' row."""

    name = "identity"
    seeded = False

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Return ``wav`` unchanged."""
        return np.asarray(wav, np.float32).copy()


class McAdamsSystem:
    """VPC McAdams anonymizer, alpha uniform in [0.5, 0.9] drawn from the seed."""

    name = "mcadams"
    seeded = True

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Anonymize with alpha drawn from ``seed``."""
        return mcadams(wav, INTERNAL_SAMPLE_RATE, draw_alpha(seed))


class ChimeraSystem:
    """chimera-voice (PyPI) with the 'strong' preset; the key is derived from the seed."""

    name = "chimera"
    seeded = True

    def __init__(self, preset: str = "strong") -> None:
        import chimera

        self._mask = chimera.mask_array
        self._preset = preset

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Anonymize with key ``csss-eval-<seed>``."""
        r = self._mask(np.asarray(wav, np.float64), INTERNAL_SAMPLE_RATE, key=f"csss-eval-{seed}",
                       preset=self._preset)
        if int(getattr(r, "sample_rate", INTERNAL_SAMPLE_RATE)) != INTERNAL_SAMPLE_RATE:
            raise RuntimeError("chimera changed the sample rate")
        return np.asarray(r.audio, np.float32)


class CommandSystem:
    """A shell command template run once per utterance on temporary wav files."""

    seeded = True

    def __init__(self, template: str, name: str | None = None) -> None:
        if "{in}" not in template or "{out}" not in template:
            raise ValueError("a command system needs {in} and {out} placeholders")
        self.template = template
        self.name = name or "cmd"

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Write ``wav``, run the command, read its output back at 16 kHz."""
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in.wav"
            dst = Path(tmp) / "out.wav"
            write_audio(src, wav, INTERNAL_SAMPLE_RATE)
            cmd = self.template.format(**{"in": shlex.quote(str(src)), "out": shlex.quote(str(dst)),
                                          "seed": int(seed)})
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"{self.name}: command failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
            y, _ = read_audio(dst, INTERNAL_SAMPLE_RATE)
        return y


class CallableSystem:
    """A Python callable ``f(samples, sample_rate, seed) -> samples``."""

    seeded = True

    def __init__(self, fn: Callable[[np.ndarray, int, int], np.ndarray], name: str) -> None:
        self._fn = fn
        self.name = name

    def process(self, wav: np.ndarray, seed: int) -> np.ndarray:
        """Call the function at the internal rate."""
        return np.asarray(self._fn(wav, INTERNAL_SAMPLE_RATE, seed), np.float32).ravel()


BUILTIN: dict[str, Callable[[], System]] = {
    "identity": IdentitySystem,
    "mcadams": McAdamsSystem,
    "chimera": ChimeraSystem,
}


def _csss() -> System:
    from csss_core.anonymizer import CSSSSystem

    return CSSSSystem()


BUILTIN["csss"] = _csss


def _csss_recon() -> System:
    from csss_core.roundtrip import CSSSReconSystem

    return CSSSReconSystem()


BUILTIN["csss-recon"] = _csss_recon


def register_system(name: str, factory: Callable[[], System]) -> None:
    """Add a named system (used by later components such as the CSSS converter)."""
    BUILTIN[name] = factory


def make_system(spec: str) -> System:
    """Build a system from its command-line spec; unknown names raise ``ValueError``."""
    if spec.startswith("cmd:"):
        return CommandSystem(spec[4:], name="cmd")
    if spec.startswith("py:"):
        mod, _, fn = spec[3:].rpartition(":")
        if not mod or not fn:
            raise ValueError("py: systems are written py:MODULE:FUNCTION")
        return CallableSystem(getattr(importlib.import_module(mod), fn), name=fn)
    if spec not in BUILTIN:
        raise ValueError(f"unknown system {spec!r}; known: {', '.join(BUILTIN)}, cmd:TEMPLATE, py:MODULE:FUNC")
    return BUILTIN[spec]()
