"""Per-call key agreement: X25519 through the signaling channel, with a hash commitment and a
short authentication string (SAS) the two users compare, as ZRTP does.

Protocol (the signaling server only relays the messages):

1. the initiator sends ``commit = SHA-256(initiator public key)``;
2. the responder answers with its public key;
3. the initiator reveals its public key; the responder checks it against the commitment.

Both derive, with HKDF-SHA256 over the X25519 secret and both public keys, one key per direction
(what seals the hidden payload each way) and a 20-bit SAS shown as four characters. A relay that
swaps the public keys (man in the middle) ends up with two different secrets, so the two users see
different SAS strings; the commitment stops it from searching for keys whose SAS would collide,
because it must commit to its key toward the responder before it sees the responder's.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SAS_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"  # ZRTP's base-32 SAS alphabet (RFC 6189, 5.1.6)
INFO = b"csss v1 call keys"


class KeyExchangeError(ValueError):
    """The peer's key-exchange message is malformed, out of order, or breaks the commitment."""


@dataclass(frozen=True)
class CallKeys:
    """The keys of one call, from one party's point of view."""

    send: bytes  # seals what this party embeds
    receive: bytes  # opens what the other party embeds
    sas: str  # four characters both users compare aloud

    def __repr__(self) -> str:  # never print key material
        return f"CallKeys(sas={self.sas!r})"


def sas_string(material: bytes) -> str:
    """Four base-32 characters from the first 20 bits of ``material``."""
    v = int.from_bytes(material[:3], "big") >> 4
    return "".join(SAS_ALPHABET[(v >> s) & 31] for s in (15, 10, 5, 0))


def derive(shared: bytes, initiator_pub: bytes, responder_pub: bytes, initiator: bool,
           psk: bytes | None = None) -> CallKeys:
    """The call keys from the X25519 secret and both public keys (initiator's first).

    ``psk``: a pre-shared key (``--key-file``) mixed in as the HKDF salt: the keys are still fresh
    per call (a payload recorded in another call never opens), and a relay that swaps the public keys
    without knowing the pre-shared key cannot open or forge the hidden payload even if nobody
    compares the SAS.
    """
    if psk is not None and len(psk) != 32:
        raise KeyExchangeError("a pre-shared call key has 32 bytes")
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=psk,
               info=INFO + (b" psk" if psk is not None else b"") + initiator_pub + responder_pub).derive(shared)
    i2r, r2i, sas = okm[:32], okm[32:64], okm[64:]
    return CallKeys(i2r, r2i, sas_string(sas)) if initiator else CallKeys(r2i, i2r, sas_string(sas))


def read_key_file(path: str | Path) -> bytes:
    """A call key from a key file (64 hex digits, as written by ``csss keygen``); ``ValueError`` if not."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such key file")
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{p}: not a key file (expected 64 hex digits)") from None
    if len(key) != 32:
        raise ValueError(f"{p}: a key is 32 bytes (64 hex digits), found {len(key)} bytes")
    return key


def _pub_bytes(k: X25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _hex32(text: str, what: str) -> bytes:
    """32 bytes from hex, or ``KeyExchangeError`` naming ``what`` was malformed."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyExchangeError(f"{what} is not hex") from exc
    if len(raw) != 32:
        raise KeyExchangeError(f"{what} must have 32 bytes")
    return raw


class KeyAgreement:
    """One party's side of the exchange. Feed it the peer's messages; it returns what to send.

    Messages are dicts in the signaling ``key`` message's shape: ``{"commit": hex}`` or
    ``{"public_key": hex}``.
    """

    def __init__(self, initiator: bool, private_key: X25519PrivateKey | None = None,
                 psk: bytes | None = None) -> None:
        if psk is not None and len(psk) != 32:
            raise KeyExchangeError("a pre-shared call key has 32 bytes")
        self.initiator = initiator
        self.psk = psk
        self._priv = private_key or X25519PrivateKey.generate()
        self.public = _pub_bytes(self._priv)
        self._peer_commit: bytes | None = None
        self._peer_pub: bytes | None = None
        self.keys: CallKeys | None = None

    def start(self) -> dict[str, str] | None:
        """The first message (the initiator's commitment); the responder waits."""
        if self.initiator:
            return {"commit": hashlib.sha256(self.public).hexdigest()}
        return None

    def receive(self, msg: dict[str, str | None]) -> dict[str, str] | None:
        """Handle the peer's message; returns the reply to send, if any."""
        if self.keys is not None:
            raise KeyExchangeError("key exchange already finished")
        commit, pub = msg.get("commit"), msg.get("public_key")
        if self.initiator:
            if pub is None or commit is not None:
                raise KeyExchangeError("expected the responder's public key")
            self._peer_pub = _hex32(pub, "the public key")
            self._finish()
            return {"public_key": self.public.hex()}
        if self._peer_commit is None:
            if commit is None or pub is not None:
                raise KeyExchangeError("expected the initiator's commitment first")
            self._peer_commit = _hex32(commit, "the commitment")
            return {"public_key": self.public.hex()}
        if pub is None or commit is not None:
            raise KeyExchangeError("expected the initiator's public key")
        raw = _hex32(pub, "the public key")
        if not hmac.compare_digest(hashlib.sha256(raw).digest(), self._peer_commit):
            raise KeyExchangeError("the initiator's public key does not match its commitment")
        self._peer_pub = raw
        self._finish()
        return None

    def _finish(self) -> None:
        assert self._peer_pub is not None
        try:
            shared = self._priv.exchange(X25519PublicKey.from_public_bytes(self._peer_pub))
        except ValueError as exc:  # low-order point: all-zero secret
            raise KeyExchangeError(f"unusable public key: {exc}") from exc
        ipub, rpub = (self.public, self._peer_pub) if self.initiator else (self._peer_pub, self.public)
        self.keys = derive(shared, ipub, rpub, self.initiator, self.psk)
