"""Deterministic offline speech corpus synthesized with Debian's speech synthesizers.

No speech data can be downloaded here, so the test corpus is made from
espeak-ng voice variants, flite voices and festival voices, each reading the
same Harvard sentences (known transcripts). Every voice gets an enrollment
split (the first ``n_enroll`` sentences) and a trial split (the rest).

The corpus is a means, not the target: real human voices behave differently,
and every figure measured on it says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioError, read_audio, write_audio

MANIFEST = "corpus.json"
TARGET_RMS_DBFS = -23.0


@dataclass(frozen=True)
class Voice:
    """One synthetic voice: a speaker id, the engine, and the engine's voice name."""

    speaker: str
    engine: str  # "espeak-ng" | "flite" | "festival"
    name: str
    source_speaker: str  # the human the voice was built from, where known
    pitch: int | None = None  # espeak-ng base pitch 0..99 (None: the variant's own)


VOICES: tuple[Voice, ...] = (
    Voice("flite_kal16", "flite", "kal16", "kal"),
    Voice("flite_awb", "flite", "awb", "awb"),
    Voice("flite_rms", "flite", "rms", "rms"),
    Voice("flite_slt", "flite", "slt", "slt"),
    Voice("fest_kal", "festival", "kal_diphone", "kal"),
    Voice("fest_ked", "festival", "ked_diphone", "ked"),
    Voice("fest_slt_hts", "festival", "cmu_us_slt_arctic_hts", "slt"),
    Voice("esp_us_m1", "espeak-ng", "en-us+m1", "espeak"),
    Voice("esp_us_m3", "espeak-ng", "en-us+m3", "espeak"),
    Voice("esp_gb_m5", "espeak-ng", "en-gb+m5", "espeak"),
    Voice("esp_sc_m7", "espeak-ng", "en-gb-scotland+m7", "espeak"),
    Voice("esp_us_f1", "espeak-ng", "en-us+f1", "espeak"),
    Voice("esp_us_f3", "espeak-ng", "en-us+f3", "espeak"),
    Voice("esp_rp_f5", "espeak-ng", "en-gb-x-rp+f5", "espeak"),
    Voice("esp_029_m2", "espeak-ng", "en-029+m2", "espeak"),
)


# Real human speech that a Debian package ships: alsa-utils' channel-test recordings (one adult male
# voice, eight ~1.4 s phrases: "Front Left", ...). Too little for speaker verification, enough to check
# that the vocoder's choices hold on a real voice and not only on synthesizers.
REAL_VOICE_DIR = Path("/usr/share/sounds/alsa")
REAL_VOICE_FILES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
                    "Side_Left", "Side_Right")


def real_voice(directory: Path = REAL_VOICE_DIR) -> np.ndarray | None:
    """alsa-utils' eight recordings of one real voice joined at 16 kHz (~11 s); None if not installed."""
    paths = [directory / f"{n}.wav" for n in REAL_VOICE_FILES]
    if not all(p.is_file() for p in paths):
        return None
    return np.concatenate([read_audio(p)[0] for p in paths]).astype(np.float32)


ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "klatt4", "Alex", "Andy", "Annie", "belinda", "benjamin", "Denis", "edward", "Gene",
                   "iven", "john", "linda", "Michael", "norbert", "paul", "steph")


def pool_voices(n: int = 120, seed: int = 1) -> tuple[Voice, ...]:
    """A larger pool of voices for training models (not the evaluation corpus's voices).

    espeak-ng accent x variant x base pitch combinations, drawn deterministically, plus the
    flite and festival voices are left out (they are in the evaluation corpus).
    """
    rng = np.random.default_rng(seed)
    combos = [(a, v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    order = rng.permutation(len(combos))
    used = {v.name for v in VOICES}
    out: list[Voice] = []
    for i in order:
        a, v = combos[int(i)]
        name = f"{a}+{v}"
        if name in used:
            continue
        pitch = int(rng.integers(15, 85))
        out.append(Voice(f"pool_{a}_{v}_p{pitch}".replace("-", ""), "espeak-ng", name, "espeak", pitch))
        if len(out) >= n:
            break
    return tuple(out)


@dataclass(frozen=True)
class Utterance:
    """One corpus file and what is known about it."""

    utt_id: str
    speaker: str
    text: str
    split: str  # "enroll" | "trial"
    path: str  # relative to the corpus folder
    duration: float
    sha256: str


def sentences() -> list[str]:
    """The bundled Harvard sentences, one per line."""
    text = resources.files("csss_core").joinpath("data", "sentences.txt").read_text(encoding="utf-8")
    return [s.strip() for s in text.splitlines() if s.strip()]


def voice_by_name(speaker: str) -> Voice:
    """Look up a voice by speaker id; unknown ids raise ``ValueError`` listing the known ones."""
    for v in VOICES:
        if v.speaker == speaker:
            return v
    raise ValueError(f"unknown voice {speaker!r}; known: {', '.join(v.speaker for v in VOICES)}")


def missing_synthesizers() -> list[str]:
    """Programs the builder needs that are not on PATH."""
    return [p for p in ("espeak-ng", "flite", "text2wave") if shutil.which(p) is None]


def _synthesize(voice: Voice, text: str, out_wav: Path) -> None:
    """Run one synthesizer and write its raw output to ``out_wav``."""
    if voice.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice.name, "-w", str(out_wav)]
        if voice.pitch is not None:
            cmd += ["-p", str(voice.pitch)]
        cmd.append(text)
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "-t", text, "-o", str(out_wav)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    elif voice.engine == "festival":
        txt = out_wav.with_suffix(".txt")
        txt.write_text(text + "\n", encoding="utf-8")
        cmd = ["text2wave", "-eval", f"(voice_{voice.name})", str(txt), "-o", str(out_wav)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    else:
        raise ValueError(f"unknown engine {voice.engine!r}; known: espeak-ng, flite, festival")


def _normalize(x: np.ndarray) -> np.ndarray:
    """Trim leading/trailing near-silence (keeping 100 ms) and set the level to -23 dBFS RMS."""
    env = np.abs(x)
    thr = 10 ** (-50 / 20)
    idx = np.flatnonzero(env > thr)
    if len(idx) == 0:
        raise AudioError("synthesizer produced silence")
    pad = int(0.1 * INTERNAL_SAMPLE_RATE)
    x = x[max(0, idx[0] - pad) : idx[-1] + pad]
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    gain = 10 ** (TARGET_RMS_DBFS / 20) / max(rms, 1e-9)
    peak = float(np.max(np.abs(x))) * gain
    if peak > 0.95:
        gain *= 0.95 / peak
    return (x * gain).astype(np.float32)


def build_corpus(
    out_dir: str | Path,
    voices: Sequence[Voice] = VOICES,
    n_sentences: int = 20,
    n_enroll: int = 5,
    jobs: int = 2,
    progress: Callable[[int, int], None] | None = None,
    first_sentence: int = 0,
) -> list[Utterance]:
    """Synthesize the corpus into ``out_dir`` and write its manifest.

    Deterministic: the same synthesizer versions give byte-identical files.

    Args:
        out_dir: folder to create (existing files are overwritten).
        voices: which voices to use.
        n_sentences: sentences per voice (at most the bundled count).
        n_enroll: how many of them form the enrollment split.
        jobs: synthesizer processes run at once.
        progress: called with ``(done, total)`` after each file.
        first_sentence: index of the first bundled sentence used (model-training pools use the
            sentences after the evaluation corpus's, so no text is shared).
    """
    missing = missing_synthesizers()
    if missing:
        raise RuntimeError(f"missing synthesizers {missing}: apt-get install espeak-ng flite festival")
    texts = sentences()[first_sentence:]
    if not 1 <= n_sentences <= len(texts):
        raise ValueError(f"n_sentences must be in [1, {len(texts)}]")
    if not 1 <= n_enroll < n_sentences:
        raise ValueError("n_enroll must leave at least one trial sentence")
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    jobs_list = [(v, i, texts[i]) for v in voices for i in range(n_sentences)]

    def one(job: tuple[Voice, int, str]) -> Utterance:
        v, i, text = job
        utt_id = f"{v.speaker}-{i:03d}"
        rel = f"wav/{v.speaker}/{utt_id}.wav"
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            _synthesize(v, text, raw)
            x, _ = read_audio(raw, INTERNAL_SAMPLE_RATE)
        x = _normalize(x)
        dst = out / rel
        write_audio(dst, x, INTERNAL_SAMPLE_RATE)
        digest = hashlib.sha256(dst.read_bytes()).hexdigest()
        split = "enroll" if i < n_enroll else "trial"
        return Utterance(utt_id, v.speaker, text, split, rel, round(len(x) / INTERNAL_SAMPLE_RATE, 4), digest)

    done = 0
    utts: list[Utterance] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for u in pool.map(one, jobs_list):
            utts.append(u)
            done += 1
            if progress:
                progress(done, len(jobs_list))
    manifest = {
        "sample_rate": INTERNAL_SAMPLE_RATE,
        "voices": [asdict(v) for v in voices],
        "utterances": [asdict(u) for u in utts],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return utts


@dataclass
class Corpus:
    """A built corpus: its folder and its utterances."""

    root: Path
    utterances: list[Utterance]

    @classmethod
    def load(cls, root: str | Path) -> Corpus:
        """Read a corpus folder written by :func:`build_corpus` (or by hand in the same format)."""
        r = Path(root)
        mf = r / MANIFEST
        if not mf.is_file():
            raise FileNotFoundError(f"{r}: no {MANIFEST}; build one with `csss corpus build {r}`")
        data = json.loads(mf.read_text(encoding="utf-8"))
        utts = [Utterance(**u) for u in data["utterances"]]
        return cls(r, utts)

    def path(self, u: Utterance) -> Path:
        """Absolute path of an utterance's audio."""
        return self.root / u.path

    @property
    def speakers(self) -> list[str]:
        """Speaker ids in manifest order."""
        return list(dict.fromkeys(u.speaker for u in self.utterances))

    def split(self, name: str) -> list[Utterance]:
        """Utterances of one split ("enroll" or "trial")."""
        return [u for u in self.utterances if u.split == name]

    def subset(self, max_speakers: int | None = None, max_trials: int | None = None) -> Corpus:
        """A smaller corpus: the first speakers, and at most ``max_trials`` trials per speaker."""
        keep = set(self.speakers[:max_speakers]) if max_speakers else set(self.speakers)
        out: list[Utterance] = []
        count: dict[str, int] = {}
        for u in self.utterances:
            if u.speaker not in keep:
                continue
            if u.split == "trial" and max_trials is not None:
                if count.get(u.speaker, 0) >= max_trials:
                    continue
                count[u.speaker] = count.get(u.speaker, 0) + 1
            out.append(u)
        return Corpus(self.root, out)
