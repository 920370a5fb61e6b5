"""The ``csss`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from csss_core.audio import AudioError


class _Bars:
    """tqdm progress bars keyed by task description (stderr)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, object] = {}

    def __call__(self, desc: str, done: int, total: int) -> None:
        bar = self._bars.get(desc)
        if bar is None:
            bar = self._tqdm(total=total, desc=desc, unit="it", leave=False, file=sys.stderr)
            self._bars[desc] = bar
        bar.n = done  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]
        if done >= total:
            bar.close()  # type: ignore[attr-defined]
            del self._bars[desc]


def _cmd_corpus_build(args: argparse.Namespace) -> int:
    from csss_core.corpus import VOICES, build_corpus, voice_by_name

    voices = [voice_by_name(v) for v in args.voices.split(",")] if args.voices else list(VOICES)
    bars = _Bars()
    utts = build_corpus(args.dir, voices, n_sentences=args.sentences, n_enroll=args.enroll, jobs=args.jobs,
                        progress=lambda d, n: bars("synthesizing", d, n))
    print(f"wrote {len(utts)} utterances from {len(voices)} voices to {args.dir}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from csss_core.corpus import Corpus
    from csss_core.evaluation.runner import EvalConfig, format_terminal, results_table, run_eval

    corpus = Corpus.load(args.corpus).subset(args.max_speakers, args.max_trials)
    cfg = EvalConfig(
        systems=[s for s in args.systems.split(",") if s],
        attackers=[a for a in args.attackers.split(",") if a],
        out_dir=Path(args.out),
        base_seed=args.seed,
        wer=not args.no_wer,
        quality=not args.no_quality,
    )
    results = run_eval(corpus, cfg, _Bars())
    header, rows = results_table(results, cfg.attackers)
    print(format_terminal(header, rows))
    print(f"\nreport: {cfg.out_dir / 'report.md'}")
    return 0


def _read_key(path: str | None) -> bytes | None:
    """A call key from a key file (64 hex digits, as written by ``csss keygen``)."""
    if path is None:
        return None
    from csss_core.keys import read_key_file

    return read_key_file(path)


def _cmd_keygen(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from csss_core.payload import new_key

    p = Path(args.keyfile)
    if p.exists() and not args.force:
        raise ValueError(f"{p} exists; use --force to replace it")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_key().hex() + "\n")
    print(f"wrote a new 256-bit call key to {p} (keep it private; share it only with the other party)")
    return 0


def _cmd_anonymize(args: argparse.Namespace) -> int:
    import secrets

    from csss_core.anonymizer import Anonymizer
    from csss_core.audio import INTERNAL_SAMPLE_RATE, check_output_path, read_audio, write_audio
    from csss_core.sealed_voice import frame_seconds, hide_identity

    check_output_path(args.output)
    key = _read_key(args.key_file)
    x, _ = read_audio(args.input)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed < 2**32:
        raise ValueError("--seed must be in [0, 2**32): the receiver regenerates the pseudo-voice from it")
    if not 0.1 <= args.beta <= 1.0:
        raise ValueError("--beta must be in [0.1, 1]")
    res = Anonymizer(beta=args.beta, asv_check=not args.no_asv_check).anonymize(x, seed)
    y = hide_identity(res, key, args.beta)
    write_audio(args.output, y, INTERNAL_SAMPLE_RATE)
    dist = "n/a" if res.asv_distance is None else f"{res.asv_distance:.2f}"
    per_copy = frame_seconds(res, key)
    copies = len(x) / INTERNAL_SAMPLE_RATE / per_copy
    sealed = "sealed with the key" if key else "NOT sealed (no --key-file): anyone can read it"
    print(f"wrote {args.output}: pseudo-voice of seed {seed} (ASV cosine distance to the real voice {dist}, "
          f"{res.redraws} redraws; pitch x{res.offsets.pitch:.3f}, energy x{res.offsets.energy:.3f}); "
          f"identity payload {sealed}, {per_copy:.1f} s per copy, {copies:.1f} copies")
    if len(x) / INTERNAL_SAMPLE_RATE < per_copy:
        print(f"warning: the input is shorter than one payload copy ({per_copy:.1f} s); the receiver cannot lock",
              file=sys.stderr)
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    import json

    from csss_core.audio import read_audio
    from csss_core.sealed_voice import extract_identity

    y, _ = read_audio(args.input)
    ext = extract_identity(y, _read_key(args.key_file))
    print(json.dumps(ext.to_json()))
    if ext.embedding is None:
        print(f"csss: error: {ext.reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from csss_core.anonymizer import Anonymizer
    from csss_core.audio import INTERNAL_SAMPLE_RATE, check_output_path, read_audio, write_audio
    from csss_core.sealed_voice import extract_identity, reconstruct

    check_output_path(args.output)
    y, _ = read_audio(args.input)
    key = _read_key(args.key_file)
    ext = extract_identity(y, key)
    if ext.embedding is None:
        raise ValueError(f"no valid identity payload: {ext.reason}")
    if key is not None and not ext.authenticated:
        raise ValueError("payload not authenticated")
    out = reconstruct(y, ext, Anonymizer(asv_check=False))
    write_audio(args.output, out, INTERNAL_SAMPLE_RATE)
    auth = "authenticated" if ext.authenticated else "NOT authenticated (no key)"
    print(f"wrote {args.output}: real voice reconstructed ({auth}; locked after {ext.seconds_to_lock:.1f} s)")
    return 0


def _cmd_call(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from client.call import CallError, CallOptions, run_call

    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise ValueError("--seed must be in [0, 2**32)")
    if args.duration is not None and args.duration <= 0:
        raise ValueError("--duration must be positive")
    _check_call_files(args)

    def device(v: str | None) -> str | int | None:
        return int(v) if v is not None and v.isdigit() else v

    opts = CallOptions(server=args.server, room=args.room, input_file=args.input_file, output_file=args.output_file,
                       input_device=device(args.input_device), output_device=device(args.output_device),
                       silent=args.silent, loop_input=args.loop_input, key_file=args.key_file, seed=args.seed,
                       enroll=args.enroll, engine=not args.no_engine, duration=args.duration,
                       ice_hosts=args.ice_host or None, status=not args.quiet, timing_file=args.timing_file,
                       jitter_frames=args.jitter_frames, allow_listeners=args.allow_listeners)
    try:
        report = run_call(opts)
    except CallError as exc:
        raise RuntimeError(str(exc)) from exc
    print(json.dumps(asdict(report)))
    return 0 if report.connected else 1


def _check_call_files(args: argparse.Namespace) -> None:
    """Refuse an unreadable --input-file / --enroll or an unwritable --output-file before connecting."""
    from csss_core.audio import check_output_path, read_audio

    if args.output_file:
        check_output_path(args.output_file)
    for f in (args.input_file, args.enroll):
        if f:
            read_audio(f, sample_rate=None)


def _cmd_roundtrip(args: argparse.Namespace) -> int:
    import json
    import secrets

    from csss_core.audio import INTERNAL_SAMPLE_RATE, read_audio, write_audio
    from csss_core.payload import new_key
    from csss_core.roundtrip import figures, roundtrip

    if not 0.0 <= args.loss < 1.0:
        raise ValueError("--loss is a fraction of packets in [0, 1)")
    if not 6_000 <= args.bitrate <= 510_000:
        raise ValueError("--bitrate must be within Opus's 6-510 kbit/s")
    key = _read_key(args.key_file) or new_key()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    x, _ = read_audio(args.input)
    rt = roundtrip(x, key, seed, bitrate=args.bitrate, loss=args.loss, enroll=not args.streaming)
    fig = figures(x, rt, quality=not args.no_quality)
    print(json.dumps({"seed": seed, "bitrate": args.bitrate, "loss": args.loss, **fig}))
    if rt.seconds_to_lock is None:
        print(f"csss: error: the receiver did not lock onto the hidden identity ({rt.reason}); nothing written",
              file=sys.stderr)
        return 1
    write_audio(out / "anonymized.wav", rt.anonymized, INTERNAL_SAMPLE_RATE)
    write_audio(out / "channel.wav", rt.channel, INTERNAL_SAMPLE_RATE)
    write_audio(out / "reconstructed.wav", rt.reconstructed, INTERNAL_SAMPLE_RATE)
    print(f"wrote anonymized.wav, channel.wav (Opus {args.bitrate // 1000} kbit/s) and reconstructed.wav to {out}",
          file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from server.main import create_app
    from server.settings import Settings

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        raise ValueError("the demo hears the visitor's raw voice: serve it on 127.0.0.1 (or pass --allow-remote)")
    logging.basicConfig(level=logging.INFO)
    print(f"CSSS demo: open http://{args.host}:{args.port}/demo in a browser on this machine (Ctrl-C stops)",
          flush=True)
    from server.main import WS_MAX_FRAME

    uvicorn.run(create_app(Settings(host=args.host, port=args.port), demo=True), host=args.host, port=args.port,
                log_level="warning", ws_max_size=WS_MAX_FRAME)
    return 0


def _load_payload_file(path: str) -> np.ndarray:
    """An embedding from ``.npy`` or from JSON with an ``embedding`` list (``csss embed-speaker`` output)."""
    import json

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such payload file")
    if p.suffix == ".npy":
        try:
            v = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{p}: not a numeric .npy array") from exc
    else:
        try:
            v = np.asarray(json.loads(p.read_text(encoding="utf-8"))["embedding"], dtype=np.float32)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p}: expected JSON with an \"embedding\" list of numbers, or a .npy file") from exc
    v = np.asarray(v, dtype=np.float32).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"{p}: the embedding must be a non-empty list of finite numbers")
    return v


def _cmd_hide(args: argparse.Namespace) -> int:
    from csss_core.audio import INTERNAL_SAMPLE_RATE, check_output_path, read_audio, write_audio
    from csss_core.payload import SpeakerPayload, frame_bits, seal

    check_output_path(args.output)
    key = _read_key(args.key_file)
    x, _ = read_audio(args.carrier)
    payload = SpeakerPayload(_load_payload_file(args.payload_file))
    if args.method == "net":
        from csss_core.stego_net import hide

        y = hide(x, payload, key)
    else:
        from csss_core.sealed_voice import HIDDEN_CHANNEL
        from csss_core.stego_ss import embed

        y = embed(x, frame_bits(seal(payload, key)), HIDDEN_CHANNEL)
    write_audio(args.output, y, INTERNAL_SAMPLE_RATE)
    from csss_core.evaluation.metrics import snr_db

    sealed = "sealed with the key" if key else "NOT sealed (no --key-file)"
    print(f"wrote {args.output}: {payload.embedding.size}-value payload {sealed}, carrier {args.method}, "
          f"SNR {snr_db(x, y):.1f} dB")
    return 0


def _cmd_reveal(args: argparse.Namespace) -> int:
    import json

    from csss_core.audio import read_audio
    from csss_core.sealed_voice import extracted_from_state

    key = _read_key(args.key_file)
    y, _ = read_audio(args.input)
    if args.method == "net":
        from csss_core.stego_net import reveal

        state, secs = reveal(y, key)
    else:
        from csss_core.sealed_voice import HIDDEN_CHANNEL
        from csss_core.stego_ss import extract_ss

        ex = extract_ss(y, key, HIDDEN_CHANNEL)
        state, secs = ex.receiver.state, ex.seconds_to_lock
    ext = extracted_from_state(state, secs)
    out = ext.to_json()
    if state.opened is not None:
        out["reason"] = "ok" if state.authenticated else "ok (not authenticated: no key)"
    print(json.dumps(out))
    if state.opened is None:
        print(f"csss: error: {ext.reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_embed_speaker(args: argparse.Namespace) -> int:
    import json

    from csss_core.anonymizer import Anonymizer
    from csss_core.audio import read_audio

    x, _ = read_audio(args.input)
    emb = Anonymizer(asv_check=False).embed_speaker(x)
    print(json.dumps({"embedding": [round(float(v), 6) for v in emb.to_vector()]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``csss``."""
    p = argparse.ArgumentParser(prog="csss", description="CSSS: private voice calls and their evaluation")
    sub = p.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="the offline test corpus")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    b = csub.add_parser("build", help="synthesize the corpus with espeak-ng, flite and festival")
    b.add_argument("dir", help="output folder")
    b.add_argument("--voices", default="", help="comma-separated voice ids (default: all)")
    b.add_argument("--sentences", type=int, default=20, help="sentences per voice")
    b.add_argument("--enroll", type=int, default=5, help="of which enrollment")
    b.add_argument("--jobs", type=int, default=2, help="synthesizers run at once")
    b.set_defaults(func=_cmd_corpus_build)

    k = sub.add_parser("keygen", help="write a new random 256-bit call key")
    k.add_argument("keyfile")
    k.add_argument("--force", action="store_true", help="replace an existing file")
    k.set_defaults(func=_cmd_keygen)

    x = sub.add_parser("extract", help="recover the hidden identity payload; prints one JSON object")
    x.add_argument("input")
    x.add_argument("--key-file", default=None)
    x.set_defaults(func=_cmd_extract)

    r = sub.add_parser("reconstruct", help="give the real voice back from a pseudo-voice with its payload")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--key-file", default=None)
    r.set_defaults(func=_cmd_reconstruct)

    a = sub.add_parser("anonymize", help="convert speech into a pseudo-speaker's voice with the identity hidden")
    a.add_argument("input")
    a.add_argument("output", help=".wav, .flac or .ogg")
    a.add_argument("--seed", type=int, default=None, help="pseudo-voice seed (default: random)")
    a.add_argument("--key-file", default=None, help="seal the hidden payload with this call key (csss keygen)")
    a.add_argument("--no-asv-check", action="store_true", help="skip the ASV distance check when drawing")
    a.add_argument("--beta", type=float, default=1.0,
                   help="how much within-class source detail to keep (1 = all; lower = more private, less clear)")
    a.set_defaults(func=_cmd_anonymize)

    hd = sub.add_parser("hide", help="hide a payload (an embedding) in any speech: the raw hidden channel")
    hd.add_argument("carrier")
    hd.add_argument("output")
    hd.add_argument("--payload-file", required=True, help="JSON with an \"embedding\" list, or .npy")
    hd.add_argument("--key-file", help="seal with this key (csss keygen)")
    hd.add_argument("--method", choices=["net", "ss"], default="net",
                    help="net: the U-Net + graph network (default); ss: the spread-spectrum baseline")
    hd.set_defaults(func=_cmd_hide)
    rv = sub.add_parser("reveal", help="recover a payload hidden by csss hide; prints one JSON object")
    rv.add_argument("input")
    rv.add_argument("--key-file")
    rv.add_argument("--method", choices=["net", "ss"], default="net")
    rv.set_defaults(func=_cmd_reveal)

    rtp = sub.add_parser("roundtrip", help="one file through sender, Opus and receiver; writes the three "
                         "signals and prints figures (JSON)")
    rtp.add_argument("input")
    rtp.add_argument("outdir")
    rtp.add_argument("--key-file", help="call key (default: a fresh random one)")
    rtp.add_argument("--seed", type=int)
    rtp.add_argument("--bitrate", type=int, default=96_000, help="Opus bitrate (aiortc sends 96000)")
    rtp.add_argument("--loss", type=float, default=0.0, help="fraction of 20 ms packets dropped")
    rtp.add_argument("--streaming", action="store_true", help="learn the voice as it goes (a call without "
                     "--enroll) instead of using the whole file as enrollment")
    rtp.add_argument("--no-quality", action="store_true", help="skip DNSMOS")
    rtp.set_defaults(func=_cmd_roundtrip)

    dm = sub.add_parser("demo", help="the browser demo: a local engine peer and its page; prints the URL")
    dm.add_argument("--host", default="127.0.0.1")
    dm.add_argument("--port", type=int, default=8765)
    dm.add_argument("--allow-remote", action="store_true", help="serve beyond this machine (the visitor's raw "
                    "voice then crosses the network to it)")
    dm.set_defaults(func=_cmd_demo)

    c = sub.add_parser("call", help="a private call: join a room on the signaling server and talk")
    c.add_argument("--server", required=True, help="signaling server, e.g. http://127.0.0.1:8765")
    c.add_argument("--room", required=True, help="room name (letters, digits, - and _)")
    c.add_argument("--input-file", help="send this audio file instead of the microphone (headless)")
    c.add_argument("--output-file", help="write what you hear to this file instead of the speaker (headless)")
    c.add_argument("--input-device", help="microphone (sounddevice name or index; see python -m sounddevice)")
    c.add_argument("--output-device", help="speaker (sounddevice name or index)")
    c.add_argument("--silent", action="store_true", help="send silence (listen only)")
    c.add_argument("--loop-input", action="store_true", help="repeat --input-file")
    c.add_argument("--allow-listeners", action="store_true",
                   help="let browser listeners in the room (/listen page) hear what the network hears: your "
                        "pseudo-voice")
    c.add_argument("--key-file", help="pre-shared key (csss keygen), mixed into the per-call X25519 exchange: "
                   "a relay that does not know it cannot open or forge the hidden identity")
    c.add_argument("--seed", type=int, help="pseudo-speaker seed (default: random per call)")
    c.add_argument("--enroll", help="a recording of your voice: identity ready (and ASV-checked) from the start")
    c.add_argument("--no-engine", action="store_true", help="pass audio through unchanged (latency baseline)")
    c.add_argument("--duration", type=float, help="hang up after this many seconds connected")
    c.add_argument("--ice-host", action="append", help="only gather ICE host candidates on this address")
    c.add_argument("--timing-file", help="write per-chunk timings as JSON (latency benchmark)")
    c.add_argument("--jitter-frames", type=int, default=2, help="20 ms frames the receive jitter buffer waits "
                   "for (default 2 = 40 ms; aiortc's own is 4; raise it on a jittery network, 1 on a LAN)")
    c.add_argument("--quiet", action="store_true", help="no status line")
    c.set_defaults(func=_cmd_call)

    es = sub.add_parser("embed-speaker", help="print the speaker embedding that anonymize would hide")
    es.add_argument("input")
    es.set_defaults(func=_cmd_embed_speaker)

    e = sub.add_parser("eval", help="evaluate systems side by side (privacy, utility, quality, speed)")
    e.add_argument("--corpus", default="corpus", help="corpus folder (csss corpus build)")
    e.add_argument("--systems", default="identity,mcadams,chimera",
                   help="comma-separated: identity, mcadams, chimera, csss, cmd:TEMPLATE, py:MODULE:FUNC")
    e.add_argument("--attackers", default="ge2e,dvector", help="comma-separated ASV attackers")
    e.add_argument("--out", default="eval_out", help="report folder")
    e.add_argument("--max-speakers", type=int, default=None)
    e.add_argument("--max-trials", type=int, default=None, help="trial utterances per speaker")
    e.add_argument("--seed", type=int, default=0, help="base seed for pseudo-voices")
    e.add_argument("--no-wer", action="store_true", help="skip ASR")
    e.add_argument("--no-quality", action="store_true", help="skip DNSMOS/PLCMOS/PESQ/STOI")
    e.set_defaults(func=_cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, exit non-zero with a one-line reason on failure."""
    import warnings

    # webrtcvad (a resemblyzer dependency) imports the deprecated pkg_resources; not the user's concern
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (AudioError, ValueError, OSError, RuntimeError) as exc:
        print(f"csss: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("csss: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
