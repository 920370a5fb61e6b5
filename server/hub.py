"""Who is in which room, and delivery of signaling text between the parties of a room.

Two implementations of one small interface:

* :class:`LocalHub` — one server process; rooms live in memory.
* :class:`RedisHub` — several server processes share rooms through Redis: membership in a hash per
  room (``csss:room:NAME``: party id -> instance id), changed atomically by a Lua script that also
  enforces the two-party limit; delivery by pub/sub, one channel per server instance
  (``csss:inst:ID``), so a party connected to instance 1 reaches the other party on instance 2. Each
  party has a liveness key refreshed by its instance; a party whose instance died expires after
  ``peer_ttl`` seconds and its slot frees itself at the next join.

A party (:class:`Party`) is a connection the hub can hand text to. The hub never parses what it
relays; events (``peer-joined``/``peer-left``) are generated here and carry no payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, Protocol

from server.messages import PeerJoined, PeerLeft

log = logging.getLogger("csss.server")


class RoomFull(Exception):
    """The room already has its two parties."""


class Party(Protocol):
    """One signaling connection as the hub sees it."""

    id: str

    async def deliver(self, text: str, event: str | None = None) -> None:
        """Send ``text`` to this party; ``event`` is "joined"/"left" when the other party came or went."""
        ...


class Hub(Protocol):
    """Room membership and relay."""

    capacity: int

    async def start(self) -> None:
        """Connect whatever backs the hub."""
        ...

    async def close(self) -> None:
        """Release it."""
        ...

    async def join(self, room: str, party: Party) -> int:
        """Add ``party`` to ``room`` and tell the others; returns the parties now in the room (RoomFull)."""
        ...

    async def leave(self, room: str, party: Party) -> None:
        """Remove ``party`` from ``room`` and tell the others."""
        ...

    async def relay(self, room: str, party: Party, text: str) -> int:
        """Hand ``text`` to the other parties of ``room``; returns how many it was sent to."""
        ...

    def local_rooms(self) -> int:
        """Rooms with at least one party connected to this process."""
        ...


async def _safe_deliver(party: Party, text: str, event: str | None = None) -> None:
    try:
        await party.deliver(text, event)
    except Exception as exc:  # noqa: BLE001 (a party that is going away must not break the others)
        log.debug("delivery to a closing party failed: %s", type(exc).__name__)


class LocalHub:
    """Rooms in this process's memory."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self.rooms: dict[str, list[Party]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def join(self, room: str, party: Party) -> int:
        """Add ``party``; the others get ``peer-joined``."""
        async with self._lock:
            members = self.rooms.setdefault(room, [])
            if len(members) >= self.capacity:
                raise RoomFull(room)
            others = list(members)
            members.append(party)
        for o in others:
            await _safe_deliver(o, PeerJoined().model_dump_json(), "joined")
        return len(others) + 1

    async def leave(self, room: str, party: Party) -> None:
        """Remove ``party``; the others get ``peer-left``; an empty room is dropped."""
        async with self._lock:
            members = self.rooms.get(room, [])
            if party in members:
                members.remove(party)
            if not members:
                self.rooms.pop(room, None)
            others = list(members)
        for o in others:
            await _safe_deliver(o, PeerLeft().model_dump_json(), "left")

    async def relay(self, room: str, party: Party, text: str) -> int:
        """Send to the others in ``room``."""
        async with self._lock:
            others = [p for p in self.rooms.get(room, []) if p is not party]
        for o in others:
            await _safe_deliver(o, text)
        return len(others)

    def local_rooms(self) -> int:
        """Rooms in memory."""
        return len(self.rooms)


_JOIN = """
local members = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #members, 2 do
  if redis.call('EXISTS', ARGV[4] .. members[i]) == 1 then
    n = n + 1
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

    def __init__(self, url: str, capacity: int = 2, peer_ttl: float = 30.0, prefix: str = "csss") -> None:
        self.url = url
        self.capacity = capacity
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

    async def _send(self, room: str, party: Party, text: str, event: str | None = None) -> int:
        members: dict[str, str] = await self._redis.hgetall(self._room_key(room))
        n = 0
        for pid, inst in members.items():
            if pid == party.id:
                continue
            await self._redis.publish(self._channel(inst), json.dumps({"to": pid, "text": text, "event": event}))
            n += 1
        return n

    async def join(self, room: str, party: Party) -> int:
        """Atomically take a slot (stale parties are cleared first); the others get ``peer-joined``."""
        await self._redis.set(self._alive_prefix() + party.id, self.instance, ex=int(self.peer_ttl))
        before = int(await self._join(keys=[self._room_key(room)],
                                      args=[party.id, self.instance, self.capacity, self._alive_prefix()]))
        if before < 0:
            await self._redis.delete(self._alive_prefix() + party.id)
            raise RoomFull(room)
        self._local[party.id] = party
        self._rooms.setdefault(room, set()).add(party.id)
        await self._send(room, party, PeerJoined().model_dump_json(), "joined")
        return before + 1

    async def leave(self, room: str, party: Party) -> None:
        """Give the slot back; the others get ``peer-left``."""
        self._local.pop(party.id, None)
        ids = self._rooms.get(room)
        if ids is not None:
            ids.discard(party.id)
            if not ids:
                self._rooms.pop(room, None)
        try:
            await self._redis.hdel(self._room_key(room), party.id)
            await self._redis.delete(self._alive_prefix() + party.id)
            await self._send(room, party, PeerLeft().model_dump_json(), "left")
        except Exception as exc:  # noqa: BLE001 (the party's TTL frees the slot if Redis is away now)
            log.error("redis hub: leave failed (%s)", type(exc).__name__)

    async def relay(self, room: str, party: Party, text: str) -> int:
        """Publish to the instances of the other parties."""
        return await self._send(room, party, text)

    def local_rooms(self) -> int:
        """Rooms with a party connected to this instance."""
        return len(self._rooms)
