"""Wire messages of the signaling WebSocket (JSON objects with a ``type`` field), version 1.

The server relays offer/answer/candidate/key/bye between the two parties of a room without looking
inside SDP or keys beyond size limits; it never sees audio.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

MAX_MESSAGE_BYTES = 64 * 1024
ROOM_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Join(_Msg):
    """Enter a room (first message of a connection)."""

    type: Literal["join"]
    room: Annotated[str, Field(pattern=ROOM_PATTERN)]


class Offer(_Msg):
    """SDP offer for the other party."""

    type: Literal["offer"]
    sdp: Annotated[str, Field(max_length=MAX_MESSAGE_BYTES)]


class Answer(_Msg):
    """SDP answer for the other party."""

    type: Literal["answer"]
    sdp: Annotated[str, Field(max_length=MAX_MESSAGE_BYTES)]


class Candidate(_Msg):
    """A trickled ICE candidate."""

    type: Literal["candidate"]
    candidate: Annotated[str, Field(max_length=2048)]
    sdpMid: str | None = None  # noqa: N815 (WebRTC's own field name)
    sdpMLineIndex: int | None = None  # noqa: N815


class KeyExchange(_Msg):
    """Call-key agreement (:mod:`csss_core.keys`): a SHA-256 commitment or an X25519 public key, hex.

    Exactly one of the two fields is set; the server only relays it.
    """

    type: Literal["key"]
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    public_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _one_field(self) -> KeyExchange:
        if (self.commit is None) == (self.public_key is None):
            raise ValueError("a key message carries exactly one of commit and public_key")
        return self


class Bye(_Msg):
    """Leave the call."""

    type: Literal["bye"]


ClientMessage = Annotated[Join | Offer | Answer | Candidate | KeyExchange | Bye, Field(discriminator="type")]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)


class Joined(_Msg):
    """Sent to a client that joined: how many parties are in the room, and the ICE servers to use."""

    type: Literal["joined"] = "joined"
    room: str
    peers: int
    ice_servers: list[str]


class PeerJoined(_Msg):
    """The other party arrived."""

    type: Literal["peer-joined"] = "peer-joined"


class PeerLeft(_Msg):
    """The other party left or vanished."""

    type: Literal["peer-left"] = "peer-left"


class Error(_Msg):
    """Something the client sent was refused; the connection stays usable unless it is closed after."""

    type: Literal["error"] = "error"
    code: str
    message: str
