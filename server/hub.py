"""Who is in which room, and delivery of signaling text between the parties of a room.

Two implementations of one small interface:

* :class:`LocalHub` — one server process; rooms live in memory.
* :class:`RedisHub` — several server processes share rooms through Redis: membership in a hash per
  room (``csss:room:NAME``: party id -> instance id), changed atomically by a Lua script that also
  enforces the two-party limit; delivery by pub/sub, one channel per server instance
  (``csss:inst:ID``), so a party connected to instance 1 reaches the other party on instance 2. Each
  party has a liveness key refreshed by its instance; a party whose instance died expires after
  ``peer_ttl`` seconds and its slot frees itself at the next join.

A member (:class:`Party`) is a connection the hub can hand text to, with an ``id`` and a ``role``:
``party`` (one of the two callers) or ``listener``. The hub never parses what it relays. Events are
generated here: a party's arrival or departure (``peer-joined``/``peer-left``) goes to everyone else
in the room; a listener's (``listener-joined``/``listener-left``) goes to the parties only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, Protocol

from server.messages import ListenerJoined, ListenerLeft, PeerJoined, PeerLeft

log = logging.getLogger("csss.server")


PARTY, LISTENER = "party", "listener"
CAPACITY = {PARTY: 2, LISTENER: 4}


class RoomFull(Exception):
    """The room already has its two parties (or its listeners)."""


class Party(Protocol):
    """One signaling connection as the hub sees it."""

    id: str
    role: str

    async def deliver(self, text: str, event: str | None = None) -> None:
        """Send ``text`` to this party; ``event`` is "joined"/"left" when the other party came or went."""
        ...


class Hub(Protocol):
    """Room membership and relay."""

    async def start(self) -> None:
        """Connect whatever backs the hub."""
        ...

    async def close(self) -> None:
        """Release it."""
        ...

    async def join(self, room: str, party: Party) -> list[tuple[str, str]]:
        """Add ``party`` to ``room`` and tell the others; returns who was there, (id, role) (RoomFull)."""
        ...

    async def leave(self, room: str, party: Party) -> None:
        """Remove ``party`` from ``room`` and tell the others."""
        ...

    async def relay(self, room: str, party: Party, text: str, to: str | None = None) -> int:
        """Hand ``text`` to member ``to``, or (None) to the other party; returns how many got it."""
        ...

    def local_rooms(self) -> int:
        """Rooms with at least one party connected to this process."""
        ...


def _event(who: Party, member_role: str, joined: bool) -> tuple[str, str | None] | None:
    """What a member of ``member_role`` is told when ``who`` arrives (``joined``) or goes: (text, event) or None.

    A party's coming and going reaches everyone; a listener's only the parties. ``event`` ("joined"/"left")
    is set when a party learns about the other party (its alone-in-room clock depends on it).
    """
    if who.role == PARTY:
        msg = PeerJoined(id=who.id) if joined else PeerLeft(id=who.id)
        return msg.model_dump_json(), (("joined" if joined else "left") if member_role == PARTY else None)
    if member_role == PARTY:
        return (ListenerJoined(id=who.id) if joined else ListenerLeft(id=who.id)).model_dump_json(), None
    return None


def _targets(sender: Party, members: list[tuple[str, str]], to: str | None) -> list[str]:
    """Ids a message from ``sender`` goes to: member ``to``, or else the other party."""
    if to is not None:
        return [i for i, _ in members if i == to and i != sender.id]
    return [i for i, r in members if r == PARTY and i != sender.id]


async def _safe_deliver(party: Party, text: str, event: str | None = None) -> None:
    try:
        await party.deliver(text, event)
    except Exception as exc:  # noqa: BLE001 (a party that is going away must not break the others)
        log.debug("delivery to a closing party failed: %s", type(exc).__name__)


class LocalHub:
    """Rooms in this process's memory."""

    def __init__(self) -> None:
        self.rooms: dict[str, list[Party]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def join(self, room: str, party: Party) -> list[tuple[str, str]]:
        """Add ``party``; the others are told."""
        async with self._lock:
            members = self.rooms.setdefault(room, [])
            if sum(1 for p in members if p.role == party.role) >= CAPACITY[party.role]:
                if not members:
                    self.rooms.pop(room, None)
                raise RoomFull(room)
            others = list(members)
            members.append(party)
        for o in others:
            ev = _event(party, o.role, joined=True)
            if ev is not None:
                await _safe_deliver(o, *ev)
        return [(o.id, o.role) for o in others]

    async def leave(self, room: str, party: Party) -> None:
        """Remove ``party``; the others are told; an empty room is dropped."""
        async with self._lock:
            members = self.rooms.get(room, [])
            if party in members:
                members.remove(party)
            if not members:
                self.rooms.pop(room, None)
            others = list(members)
        for o in others:
            ev = _event(party, o.role, joined=False)
            if ev is not None:
                await _safe_deliver(o, *ev)

    async def relay(self, room: str, party: Party, text: str, to: str | None = None) -> int:
        """Send to member ``to`` or to the other party."""
        async with self._lock:
            members = list(self.rooms.get(room, []))
        ids = set(_targets(party, [(p.id, p.role) for p in members], to))
        for o in members:
            if o.id in ids:
                await _safe_deliver(o, text)
        return len(ids)

    def local_rooms(self) -> int:
        """Rooms in memory."""
        return len(self.rooms)


# KEYS[1] room hash (member id -> "instance role"); ARGV: id, "instance role", capacity, alive prefix, role
_JOIN = """
local members = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #members, 2 do
  if redis.call('EXISTS', ARGV[4] .. members[i]) == 1 then
    if string.sub(members[i + 1], -string.len(ARGV[5]) - 1) == ' ' .. ARGV[5] then
      n = n + 1
    end
  else
    redis.call('HDEL', KEYS[1], members[i])
  end
end
if n >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return n
"""


class RedisHub:
    """Rooms shared by several server processes through one Redis (``redis://host:port/db``)."""

    def __init__(self, url: str, peer_ttl: float = 30.0, prefix: str = "csss") -> None:
        self.url = url
        self.peer_ttl = peer_ttl
        self.prefix = prefix
        self.instance = uuid.uuid4().hex[:12]
        self._local: dict[str, Party] = {}
        self._rooms: dict[str, set[str]] = {}  # room -> ids of its parties connected here
        self._redis: Any = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._join: Any = None

    def _room_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def _alive_prefix(self) -> str:
        return f"{self.prefix}:alive:"

    def _channel(self, instance: str) -> str:
        return f"{self.prefix}:inst:{instance}"

    async def start(self) -> None:
        """Connect, subscribe to this instance's channel and start the reader and heartbeat tasks."""
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.url, decode_responses=True)
        await self._redis.ping()
        self._join = self._redis.register_script(_JOIN)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self._channel(self.instance))
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._heartbeat())]
        log.info("redis hub %s connected", self.instance)

    async def close(self) -> None:
        """Stop the tasks, drop this instance's parties from Redis and disconnect."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._redis is not None:
            with contextlib.suppress(Exception):
                for room, ids in list(self._rooms.items()):
                    for pid in ids:
                        await self._redis.hdel(self._room_key(room), pid)
                        await self._redis.delete(self._alive_prefix() + pid)
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _reader(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("redis hub: reading the channel failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            try:
                env = json.loads(msg["data"])
                party = self._local.get(env["to"])
                text, event = env["text"], env.get("event")
            except (ValueError, KeyError, TypeError):
                continue
            if party is not None:
                await _safe_deliver(party, text, event)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.peer_ttl / 3)
            if not self._local:
                continue
            try:
                pipe = self._redis.pipeline()
                for pid in self._local:
                    pipe.set(self._alive_prefix() + pid, self.instance, ex=int(self.peer_ttl))
                await pipe.execute()
            except Exception as exc:  # noqa: BLE001
                log.error("redis hub: heartbeat failed (%s)", type(exc).__name__)

    async def _members(self, room: str) -> dict[str, tuple[str, str]]:
        """Member id -> (instance, role)."""
        raw: dict[str, str] = await self._redis.hgetall(self._room_key(room))
        out = {}
        for pid, v in raw.items():
            inst, _, role = v.partition(" ")
            out[pid] = (inst, role)
        return out

    async def _publish(self, inst: str, pid: str, text: str, event: str | None) -> None:
        await self._redis.publish(self._channel(inst), json.dumps({"to": pid, "text": text, "event": event}))

    async def join(self, room: str, party: Party) -> list[tuple[str, str]]:
        """Atomically take a slot (stale members are cleared first); the others are told."""
        await self._redis.set(self._alive_prefix() + party.id, self.instance, ex=int(self.peer_ttl))
        before = int(await self._join(keys=[self._room_key(room)],
                                      args=[party.id, f"{self.instance} {party.role}", CAPACITY[party.role],
                                            self._alive_prefix(), party.role]))
        if before < 0:
            await self._redis.delete(self._alive_prefix() + party.id)
            raise RoomFull(room)
        self._local[party.id] = party
        self._rooms.setdefault(room, set()).add(party.id)
        members = await self._members(room)
        others = [(pid, role) for pid, (_, role) in members.items() if pid != party.id]
        for pid, (inst, role) in members.items():
            ev = _event(party, role, joined=True) if pid != party.id else None
            if ev is not None:
                await self._publish(inst, pid, *ev)
        return others

    async def leave(self, room: str, party: Party) -> None:
        """Give the slot back; the others are told."""
        self._local.pop(party.id, None)
        ids = self._rooms.get(room)
        if ids is not None:
            ids.discard(party.id)
            if not ids:
                self._rooms.pop(room, None)
        try:
            await self._redis.hdel(self._room_key(room), party.id)
            await self._redis.delete(self._alive_prefix() + party.id)
            for pid, (inst, role) in (await self._members(room)).items():
                ev = _event(party, role, joined=False)
                if ev is not None:
                    await self._publish(inst, pid, *ev)
        except Exception as exc:  # noqa: BLE001 (the member's TTL frees the slot if Redis is away now)
            log.error("redis hub: leave failed (%s)", type(exc).__name__)

    async def relay(self, room: str, party: Party, text: str, to: str | None = None) -> int:
        """Publish to the instance of member ``to``, or of the other party."""
        members = await self._members(room)
        ids = _targets(party, [(pid, role) for pid, (_, role) in members.items()], to)
        for pid in ids:
            await self._publish(members[pid][0], pid, text, None)
        return len(ids)

    def local_rooms(self) -> int:
        """Rooms with a party connected to this instance."""
        return len(self._rooms)
