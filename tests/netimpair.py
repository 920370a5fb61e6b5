"""A userspace network emulator for end-to-end tests: two Linux network namespaces joined by an impaired link.

Why: the kernels this project runs its tests on may lack ``sch_netem`` (``tc qdisc add ... netem`` fails with
"Specified qdisc kind is unknown") and loading modules is not possible, while TUN devices and network
namespaces are there. So:

* two namespaces (``csss_a_<pid>_<n>``, ``csss_b_<pid>_<n>``), each with ``lo`` up and one point-to-point TUN
  device: A is ``10.77.X.1`` peer ``10.77.X.2``, B the reverse;
* one forwarder process per namespace (this file, ``forward`` sub-command, started with ``ip netns exec`` so that
  its TUN is created inside its namespace). It reads the IP packets its namespace sends to the peer from the TUN,
  impairs them, and hands them to the other forwarder over a Unix datagram socket in a temporary folder (Unix
  sockets live in the file system and work across network namespaces); what it receives from the other
  forwarder it writes to its TUN unchanged. Each forwarder impairs its own namespace's outgoing direction, so
  the two directions are impaired independently (each with its own :class:`Impairment` and seed).

Impairment model (per direction, per packet, all draws from ``random.Random(seed)``):

* loss: each packet is dropped independently with probability ``loss`` (Bernoulli, no bursts);
* delay: a kept packet is due ``delay_ms + U(0, jitter_ms)`` after it left its namespace, i.e. uniform between
  ``delay_ms`` and ``delay_ms + jitter_ms`` (``jitter_ms`` is the peak-to-peak variation; std = jitter/sqrt(12));
* order: by default packets keep their order (a packet is never released before the one sent before it: its
  release time is ``max(drawn, previous release)``), as on most real paths, where jitter comes from queues.
  ``reorder=True`` releases every packet at its own drawn time, so packets sent less than ``jitter_ms`` apart
  may swap (netem's behaviour with jitter).

Counters per direction (``seen``, ``dropped``, ``forwarded``, ``overflow``: the peer's socket queue was full,
``unreachable``: the peer was not up yet, ``delivered``: packets written to this side's TUN) and the delay
actually applied (measured, including the forwarder's scheduling) are written as JSON every half second and
at exit; :meth:`NetPair.stats` reads them.

Use::

    with NetPair(a_to_b=Impairment(loss=0.1, jitter_ms=30), b_to_a=Impairment(loss=0.1, jitter_ms=30, seed=2)) as net:
        server = net.popen("a", [sys.executable, "-m", "server.main", "--host", net.addr_a, ...])
        ...
    # namespaces deleted, every process started in them killed, even when the body raised

As a script: ``python tests/netimpair.py check --loss 0.1 --jitter-ms 30`` builds a pair, pings across it (when
``ping`` is installed), measures UDP round trips and loss and moves 2 MB over TCP, then tears it down.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import heapq
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PR_SET_PDEATHSIG = 1
PREFIX = "csss_"
_counter = itertools.count()


class NetImpairError(RuntimeError):
    """The emulated link could not be set up."""


@dataclass
class Impairment:
    """What one direction of the link does to packets (see the module's docstring for the model)."""

    loss: float = 0.0  # probability that a packet is dropped
    delay_ms: float = 0.0  # one-way delay every kept packet gets at least
    jitter_ms: float = 0.0  # extra delay, uniform in [0, jitter_ms]
    reorder: bool = False  # let packets overtake each other (default: keep order)
    seed: int = 1

    def args(self) -> list[str]:
        """This impairment as ``forward`` command-line options."""
        out = ["--loss", str(self.loss), "--delay-ms", str(self.delay_ms), "--jitter-ms", str(self.jitter_ms),
               "--seed", str(self.seed)]
        return out + (["--reorder"] if self.reorder else [])


def _set_pdeathsig(sig: int = signal.SIGTERM) -> None:
    """In a child before exec: get ``sig`` when the parent dies (no forwarder outlives a killed test run)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise NetImpairError(f"ip {' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p


def unavailable() -> str | None:
    """Why namespaces with TUN devices cannot be made here (``None``: they can). Tests skip with this reason."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces and TUN devices need root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    name = f"{PREFIX}probe_{os.getpid()}_{next(_counter)}"
    try:
        p = _ip("netns", "add", name, check=False)
        if p.returncode != 0:
            return f"ip netns add fails: {p.stderr.strip()}"
        p = _ip("netns", "exec", name, "ip", "tuntap", "add", "dev", "probe0", "mode", "tun", check=False)
        if p.returncode != 0:
            return f"cannot create a TUN device in a namespace: {p.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete namespaces this module made in runs whose process is gone (a test run killed outright)."""
    out = _ip("netns", "list", check=False).stdout
    removed = []
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}(?:a|b|probe)_(\d+)_\d+", name)
        if m and not _alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


class NetPair:
    """Two namespaces joined by an impaired point-to-point link; a context manager that cleans up everything."""

    def __init__(self, a_to_b: Impairment | None = None, b_to_a: Impairment | None = None,
                 subnet: int | None = None) -> None:
        n = next(_counter)
        self.ns = {"a": f"{PREFIX}a_{os.getpid()}_{n}", "b": f"{PREFIX}b_{os.getpid()}_{n}"}
        x = subnet if subnet is not None else (os.getpid() + n) % 250 + 1
        self.addr = {"a": f"10.77.{x}.1", "b": f"10.77.{x}.2"}
        self.impair = {"a": a_to_b or Impairment(), "b": b_to_a or Impairment(seed=2)}
        self.dir: Path | None = None
        self._forwarders: dict[str, subprocess.Popen[bytes]] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []
        self.final_stats: dict[str, dict[str, Any]] | None = None

    @property
    def addr_a(self) -> str:
        """Namespace A's address on the link."""
        return self.addr["a"]

    @property
    def addr_b(self) -> str:
        """Namespace B's address on the link."""
        return self.addr["b"]

    # ------------------------------------------------------------------ set-up and tear-down
    def __enter__(self) -> NetPair:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Make the namespaces, start the forwarders, wait until both TUN devices are up."""
        remove_stale()
        self.dir = Path(tempfile.mkdtemp(prefix="csss_netimpair_"))
        for side in ("a", "b"):
            _ip("netns", "add", self.ns[side])
            self._made.append(self.ns[side])
            _ip("-n", self.ns[side], "link", "set", "lo", "up")
        for side, other in (("a", "b"), ("b", "a")):
            cmd = ["ip", "netns", "exec", self.ns[side], sys.executable, str(Path(__file__).resolve()), "forward",
                   "--dev", f"csss{side.upper()}", "--local", self.addr[side], "--peer", self.addr[other],
                   "--sock", str(self.dir / f"{side}.sock"), "--to", str(self.dir / f"{other}.sock"),
                   "--stats", str(self.dir / f"{side}.json"), *self.impair[side].args()]
            self._forwarders[side] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                      preexec_fn=_set_pdeathsig)
        deadline = time.monotonic() + 20
        for side, p in self._forwarders.items():
            assert p.stdout is not None
            line = b""
            while time.monotonic() < deadline and not line:
                r, _, _ = select.select([p.stdout], [], [], 0.2)
                if r:
                    line = p.stdout.readline()
                    break
                if p.poll() is not None:
                    break
            if line.strip() != b"ready":
                err = p.stderr.read().decode(errors="replace") if p.poll() is not None and p.stderr else ""
                raise NetImpairError(f"forwarder {side} did not come up: {line!r} {err[-1500:]}")

    def close(self) -> None:
        """Kill what runs in the namespaces, stop the forwarders (their last counters kept), delete everything."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
        for p in self._forwarders.values():
            if p.poll() is None:
                p.terminate()
        for p in self._forwarders.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        if self.dir is not None and self._forwarders:
            with contextlib.suppress(Exception):
                self.final_stats = self.stats()
        for name in self._made:
            # anything still running in our own namespace was started through this pair: end it by its id
            pids = _ip("netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name, check=False)
        self._made.clear()
        self._forwarders.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ------------------------------------------------------------------ running things inside
    def command(self, side: str, argv: list[str]) -> list[str]:
        """``argv`` run inside namespace ``side`` ("a" or "b"); ``ip netns exec`` execs, so the pid is argv's."""
        return ["ip", "netns", "exec", self.ns[side], *argv]

    def popen(self, side: str, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside namespace ``side``; it is killed at :meth:`close` if still running."""
        p = subprocess.Popen(self.command(side, argv), preexec_fn=_set_pdeathsig, **kw)
        self._procs.append(p)
        return p

    def run(self, side: str, argv: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside namespace ``side`` to its end."""
        return subprocess.run(self.command(side, argv), timeout=timeout, **kw)

    def http_get_json(self, side: str, url: str, timeout: float = 10) -> Any:
        """GET ``url`` from inside namespace ``side`` and parse the JSON answer."""
        code = ("import sys, urllib.request; "
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())")
        p = self.run(side, [sys.executable, "-c", code, url, str(timeout)], timeout=timeout + 20,
                     capture_output=True, text=True)
        if p.returncode != 0:
            raise OSError(f"GET {url} in {self.ns[side]} failed: {p.stderr.strip()[-500:]}")
        return json.loads(p.stdout)

    def wait_http(self, side: str, url: str, timeout: float = 60) -> Any:
        """Wait until ``url`` answers inside namespace ``side``; its JSON."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self.http_get_json(side, url, timeout=2)
            except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
                last = exc
                time.sleep(0.3)
        raise AssertionError(f"{url} in {self.ns[side]} did not answer within {timeout} s: {last}")

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters of both directions: ``{"a_to_b": {...}, "b_to_a": {...}}`` (see :class:`Counters`)."""
        if self.final_stats is not None and self.dir is None:
            return self.final_stats
        assert self.dir is not None
        out = {}
        for side, key in (("a", "a_to_b"), ("b", "b_to_a")):
            path = self.dir / f"{side}.json"
            out[key] = json.loads(path.read_text()) if path.exists() else {}
        return out


# ---------------------------------------------------------------------- the forwarder (runs inside a namespace)
@dataclass
class Counters:
    """What one forwarder has done to its namespace's outgoing packets (and how many it delivered in)."""

    seen: int = 0  # packets its namespace sent to the peer
    dropped: int = 0  # of which dropped by the loss model
    forwarded: int = 0  # handed to the peer's forwarder
    overflow: int = 0  # not handed over: the peer's socket queue was full
    unreachable: int = 0  # not handed over: the peer's forwarder was not up
    delivered: int = 0  # packets from the peer written to this namespace's TUN
    delay_ms: dict[str, float] = field(default_factory=dict)  # applied delay, measured: min/p5/median/p95/max
    impairment: dict[str, Any] = field(default_factory=dict)


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def forward(a: argparse.Namespace) -> int:
    """Run one forwarder until SIGTERM (or until its parent is gone)."""
    with contextlib.suppress(OSError):
        os.nice(-5)  # the emulated network should not be what a busy 2-core machine starves
    # the peer forwarder's socket must hold bursts (a TCP window) without refusing datagrams: this sysctl is
    # per network namespace, and this namespace is ours alone
    with contextlib.suppress(OSError):
        Path("/proc/sys/net/unix/max_dgram_qlen").write_text("4096")
    tun = _open_tun(a.dev)
    for cmd in (["ip", "addr", "add", a.local, "peer", a.peer, "dev", a.dev], ["ip", "link", "set", a.dev, "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(a.sock)
    sock.bind(a.sock)
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    imp = Impairment(loss=a.loss, delay_ms=a.delay_ms, jitter_ms=a.jitter_ms, reorder=a.reorder, seed=a.seed)
    rng = random.Random(a.seed)
    c = Counters(impairment=asdict(imp))
    delays: list[float] = []
    stop = False

    def on_term(_sig: int, _frm: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def write_stats() -> None:
        if delays:
            s = sorted(delays)
            q = lambda f: round(s[min(len(s) - 1, int(f * len(s)))], 2)  # noqa: E731
            c.delay_ms = {"min": round(s[0], 2), "p5": q(0.05), "median": q(0.5), "p95": q(0.95),
                          "max": round(s[-1], 2), "mean": round(sum(s) / len(s), 2)}
        tmp = a.stats + ".tmp"
        Path(tmp).write_text(json.dumps(asdict(c)))
        os.replace(tmp, a.stats)

    print("ready", flush=True)
    heap: list[tuple[float, int, bytes, float]] = []
    seq = itertools.count()
    last_release = 0.0
    next_stats = time.monotonic() + 0.5
    ppid = os.getppid()
    while not stop:
        now = time.monotonic()
        timeout = min(0.25, max(0.0, heap[0][0] - now)) if heap else 0.25
        try:
            ready, _, _ = select.select([tun, sock], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        if tun in ready:
            while True:
                try:
                    pkt = os.read(tun, 65536)
                except BlockingIOError:
                    break
                c.seen += 1
                if rng.random() < imp.loss:
                    c.dropped += 1
                    continue
                due = now + (imp.delay_ms + rng.uniform(0.0, imp.jitter_ms)) / 1000.0
                if not imp.reorder:
                    due = max(due, last_release)
                    last_release = due
                heapq.heappush(heap, (due, next(seq), pkt, now))
        if sock in ready:
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                with contextlib.suppress(OSError):
                    os.write(tun, data)
                    c.delivered += 1
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, pkt, sent = heapq.heappop(heap)
            try:
                sock.sendto(pkt, a.to)
                c.forwarded += 1
                delays.append(1000.0 * (time.monotonic() - sent))
            except BlockingIOError:
                c.overflow += 1
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                    c.unreachable += 1
                elif exc.errno == errno.EAGAIN:
                    c.overflow += 1
                else:
                    raise
        if now >= next_stats:
            write_stats()
            next_stats = now + 0.5
            if os.getppid() != ppid:
                break
    write_stats()
    return 0


# ---------------------------------------------------------------------- the self-check (script use)
def udp_probe(net: NetPair, n: int = 400, interval: float = 0.01) -> dict[str, float]:
    """UDP echo from A to B: n probes; loss (both ways) and round-trip times."""
    port = 40000 + os.getpid() % 20000
    echo = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], "
            "int(sys.argv[2]))); s.settimeout(30)\n"
            "while True:\n d, a = s.recvfrom(2048)\n s.sendto(d, a)\n")
    srv = net.popen("b", [sys.executable, "-c", echo, net.addr_b, str(port)])
    time.sleep(0.5)
    client = ("import socket,sys,time,json,select; n=int(sys.argv[3]); iv=float(sys.argv[4]); "
              "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False); sent={}; rtt=[]; "
              "t0=time.monotonic()\n"
              "for i in range(n):\n sent[i]=time.monotonic()\n"
              " s.sendto(str(i).encode(), (sys.argv[1], int(sys.argv[2])))\n"
              " while time.monotonic() < t0 + (i+1)*iv:\n"
              "  r,_,_=select.select([s],[],[],max(0,t0+(i+1)*iv-time.monotonic()))\n"
              "  if r:\n   d=s.recv(64); rtt.append(1000*(time.monotonic()-sent[int(d)]))\n"
              "end=time.monotonic()+1\n"
              "while time.monotonic()<end:\n r,_,_=select.select([s],[],[],0.05)\n"
              " if r:\n  d=s.recv(64); rtt.append(1000*(time.monotonic()-sent[int(d)]))\n"
              "print(json.dumps(rtt))\n")
    p = net.run("a", [sys.executable, "-c", client, net.addr_b, str(port), str(n), str(interval)],
                capture_output=True, text=True, timeout=120)
    srv.kill()
    rtt = sorted(json.loads(p.stdout))
    q = lambda f: rtt[min(len(rtt) - 1, int(f * len(rtt)))] if rtt else float("nan")  # noqa: E731
    return {"probes": n, "answered": len(rtt), "round_trip_loss": 1 - len(rtt) / n, "rtt_min_ms": q(0.0),
            "rtt_median_ms": q(0.5), "rtt_p95_ms": q(0.95), "rtt_max_ms": rtt[-1] if rtt else float("nan")}


def tcp_probe(net: NetPair, nbytes: int = 2_000_000) -> dict[str, float]:
    """Send ``nbytes`` over TCP from B to a sink in A; the sink counts them."""
    port = 40000 + (os.getpid() + 1) % 20000
    sink = ("import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); c,_=s.accept(); n=0\n"
            "while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\n"
            "print(n)\n")
    srv = net.popen("a", [sys.executable, "-c", sink, net.addr_a, str(port)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    src = ("import socket,sys; c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60); "
           "c.sendall(b'x'*int(sys.argv[3])); c.close()")
    t0 = time.monotonic()
    net.run("b", [sys.executable, "-c", src, net.addr_a, str(port), str(nbytes)], check=True, timeout=120)
    out, _ = srv.communicate(timeout=60)
    secs = time.monotonic() - t0
    got = int(out.strip() or 0)
    return {"bytes_sent": nbytes, "bytes_received": got, "seconds": round(secs, 2),
            "mbit_per_s": round(8 * got / secs / 1e6, 2)}


def check(a: argparse.Namespace) -> int:
    """Build a pair with the given impairment both ways, measure it (ping, UDP echo, TCP) and print the figures."""
    why = unavailable()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    imp = dict(loss=a.loss, delay_ms=a.delay_ms, jitter_ms=a.jitter_ms, reorder=a.reorder)
    with NetPair(Impairment(**imp, seed=a.seed), Impairment(**imp, seed=a.seed + 1)) as net:
        print(f"namespaces {net.ns['a']} ({net.addr_a}) <-> {net.ns['b']} ({net.addr_b}); each way: {imp}")
        if shutil.which("ping"):
            p = net.run("a", ["ping", "-q", "-c", str(a.pings), "-i", "0.02", "-W", "1", net.addr_b],
                        capture_output=True, text=True, timeout=120)
            print("ping:", " / ".join(line.strip() for line in p.stdout.splitlines()[-2:]))
        print("udp echo:", json.dumps(udp_probe(net)))
        print("tcp:", json.dumps(tcp_probe(net)))
        stats = net.stats()
    for k, v in stats.items():
        print(f"{k}: {json.dumps(v)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``forward`` (used by :class:`NetPair`) or ``check`` (try the emulator by hand)."""
    p = argparse.ArgumentParser(description="userspace network emulator for CSSS tests")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("forward", "check"):
        s = sub.add_parser(name)
        s.add_argument("--loss", type=float, default=0.0)
        s.add_argument("--delay-ms", type=float, default=10.0 if name == "check" else 0.0)
        s.add_argument("--jitter-ms", type=float, default=0.0)
        s.add_argument("--reorder", action="store_true")
        s.add_argument("--seed", type=int, default=1)
        if name == "forward":
            for opt in ("--dev", "--local", "--peer", "--sock", "--to", "--stats"):
                s.add_argument(opt, required=True)
        else:
            s.add_argument("--pings", type=int, default=200)
    a = p.parse_args(argv)
    return forward(a) if a.cmd == "forward" else check(a)


if __name__ == "__main__":
    raise SystemExit(main())
