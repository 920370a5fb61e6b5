"""Wire messages of the signaling WebSocket (JSON objects with a ``type`` field), version 1.

The server relays offer/answer/candidate/key/bye between the two parties of a room without looking
inside SDP or keys beyond size limits; it never sees audio.

A room has at most two *parties* (the callers) and a few *listeners* (a browser that hears what the
network hears: the pseudo-voices). Every connection has an ``id`` (in ``joined``). A message without
``to`` goes to the other party; with ``to`` only to that member. Relayed messages carry ``from``.
Listeners may only talk to a party with ``to`` (offer, candidate, bye) and never see key messages.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

MAX_MESSAGE_BYTES = 64 * 1024
ROOM_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN = r"^[0-9a-f]{32}$"
PeerId = Annotated[str, Field(pattern=ID_PATTERN)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Join(_Msg):
    """Enter a room (first message of a connection)."""

    type: Literal["join"]
    room: Annotated[str, Field(pattern=ROOM_PATTERN)]
    role: Literal["party", "listener"] = "party"


class Offer(_Msg):
    """SDP offer for the other party."""

    type: Literal["offer"]
    sdp: Annotated[str, Field(max_length=MAX_MESSAGE_BYTES)]
    to: PeerId | None = None


class Answer(_Msg):
    """SDP answer for the other party."""

    type: Literal["answer"]
    sdp: Annotated[str, Field(max_length=MAX_MESSAGE_BYTES)]
    to: PeerId | None = None


class Candidate(_Msg):
    """A trickled ICE candidate."""

    type: Literal["candidate"]
    candidate: Annotated[str, Field(max_length=2048)]
    sdpMid: str | None = None  # noqa: N815 (WebRTC's own field name)
    sdpMLineIndex: int | None = None  # noqa: N815
    to: PeerId | None = None


class KeyExchange(_Msg):
    """Call-key agreement (:mod:`csss_core.keys`): a SHA-256 commitment or an X25519 public key, hex.

    Exactly one of the two fields is set; the server only relays it.
    """

    type: Literal["key"]
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    public_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    to: PeerId | None = None

    @model_validator(mode="after")
    def _one_field(self) -> KeyExchange:
        if (self.commit is None) == (self.public_key is None):
            raise ValueError("a key message carries exactly one of commit and public_key")
        return self


class Bye(_Msg):
    """Leave the call."""

    type: Literal["bye"]
    to: PeerId | None = None


ClientMessage = Annotated[Join | Offer | Answer | Candidate | KeyExchange | Bye, Field(discriminator="type")]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)


class Joined(_Msg):
    """Sent to a client that joined: how many parties are in the room, and the ICE servers to use."""

    type: Literal["joined"] = "joined"
    room: str
    peers: int  # parties in the room, this one included when it is a party
    ice_servers: list[str]
    id: str  # this connection's id in the room
    role: str
    parties: list[str]  # ids of the parties already there (a listener offers to each)
    listeners: list[str] = []  # ids of the listeners already there


class PeerJoined(_Msg):
    """A party arrived (sent to the other party and to listeners)."""

    type: Literal["peer-joined"] = "peer-joined"
    id: str | None = None
    role: str = "party"


class PeerLeft(_Msg):
    """A party left or vanished (sent to the other party and to listeners)."""

    type: Literal["peer-left"] = "peer-left"
    id: str | None = None
    role: str = "party"


class ListenerJoined(_Msg):
    """A listener arrived (sent to the parties; each decides whether to let it hear its pseudo-voice)."""

    type: Literal["listener-joined"] = "listener-joined"
    id: str


class ListenerLeft(_Msg):
    """A listener left (sent to the parties)."""

    type: Literal["listener-left"] = "listener-left"
    id: str


class Error(_Msg):
    """Something the client sent was refused; the connection stays usable unless it is closed after."""

    type: Literal["error"] = "error"
    code: str
    message: str
