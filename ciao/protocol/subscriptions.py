"""IOPub subscriptions: which to accept, and which connection holds too many.

Jupyter clients subscribe to b"" only. Any other topic costs memory twice: an XPUB in
manual mode keeps every topic a connection subscribes to (accepted or not) until that
connection ends, and an accepted one is in the trie messages are matched against too. So
other topics are counted, per connection and in all, counting unsubscriptions (only of
topics the connection holds: cancelling what it never subscribed to earns nothing); a
connection that goes over is ended (`peers.drop`), which is what frees libzmq's copy.

The guard decides; the IOPub thread acts (it owns the socket). It is given each
message's connection as ZMQ_SRCFD and Peer-Address, and checks the descriptor still is
that connection (`identify`): one libzmq has closed and whose number was reused is not
blamed for what its predecessor sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ciao.protocol.peers import Peer

#: Longest topic accepted. Jupyter clients subscribe to ""; Ciao's topics are
#: kernel.<8 hex>.<msg_type>, 40-odd bytes. (Each byte of a topic is a trie node in libzmq.)
MAX_TOPIC_BYTES = 64
#: Topics other than "" one connection may hold.
MAX_SUBSCRIPTIONS_PER_PEER = 32
#: Topics other than "" all connections together may hold.
MAX_SUBSCRIPTIONS = 256


class Action(Enum):
    SUBSCRIBE = "subscribe"  # add the topic for this connection (and greet it)
    UNSUBSCRIBE = "unsubscribe"  # remove the topic for this connection
    REFUSE = "refuse"  # leave it out (too long, or no room and the peer cannot be dropped)
    DROP = "drop"  # end this connection: it holds or sent more than it may
    IGNORE = "ignore"  # nothing to do (its connection is gone, or it changes nothing)


@dataclass(frozen=True)
class Verdict:
    action: Action
    topic: bytes = b""
    peer: Peer | None = None
    reason: str = ""


@dataclass(eq=False)
class _Held:
    """What libzmq holds for one connection: topic -> accepted (in the matching trie too)."""

    peer: Peer | None
    topics: dict[bytes, bool] = field(default_factory=dict)
    dropped: bool = False


#: A message from a connection that has ended since: taken as from one dropped.
_GONE = _Held(peer=None, dropped=True)


class SubscriptionGuard:
    """Counts what each IOPub connection subscribed to and says what to do with each
    (un)subscription message."""

    def __init__(
        self,
        identify: Callable[[int], Peer | None],
        ours: Callable[[Peer], bool],
        per_peer: int = MAX_SUBSCRIPTIONS_PER_PEER,
        total: int = MAX_SUBSCRIPTIONS,
        max_topic: int = MAX_TOPIC_BYTES,
    ) -> None:
        self._identify = identify
        self._ours = ours
        self.per_peer = per_peer
        self.total = total
        self.max_topic = max_topic
        self._connections: dict[int, _Held] = {}
        self._anonymous = _Held(peer=None)  # peers libzmq gives no descriptor for
        self._count = 0

    @property
    def count(self) -> int:
        """Topics other than "" held by connections still counted."""
        return self._count

    def on_message(self, data: bytes, fd: int | None, address: str | None) -> Verdict:
        """What to do with `data`, a message XPUB passed up, read from descriptor `fd`
        (None: libzmq gave none) of the peer at `address`."""
        held = self._connection(fd, address)
        if held is not None and held.dropped:  # dropped, or gone: nothing more of it counts
            return Verdict(Action.IGNORE, data[1:])
        if not data or data[0] not in (0, 1):
            return self._not_a_subscription(held)
        if data[0] == 1:
            return self._subscribe(held, data[1:])
        return self._unsubscribe(held, data[1:])

    def _connection(self, fd: int | None, address: str | None) -> _Held | None:
        """Its connection's record; None if libzmq gave no descriptor; _GONE if the
        descriptor is no longer that connection (it sent this, then ended)."""
        if fd is None:
            return None
        peer = self._identify(fd)
        if peer is None or not self._ours(peer) or (peer.host and peer.host != address):
            return _GONE
        held = self._connections.get(fd)
        if held is None or held.peer != peer:  # first message, or the number was reused
            if held is not None:
                self._forget(held)
            held = self._connections[fd] = _Held(peer)
        return held

    def _not_a_subscription(self, held: _Held | None) -> Verdict:
        """Subscribers send nothing else (only an XSUB can): a peer that does is dropped."""
        if held is None:
            return Verdict(Action.IGNORE)
        return self._drop(held, "it sent a message that is not a subscription")

    def _subscribe(self, held: _Held | None, topic: bytes) -> Verdict:
        if not topic:  # Jupyter's: libzmq holds it once per connection, whatever is sent
            return Verdict(Action.SUBSCRIBE, topic)
        held = held or self._anonymous
        if topic in held.topics:  # held already: a repeat costs libzmq nothing
            return Verdict(Action.SUBSCRIBE if held.topics[topic] else Action.IGNORE, topic)
        full = self._full(held)
        if full:
            if held is self._anonymous:
                return Verdict(Action.REFUSE, topic, reason=full)
            return self._drop(held, full)
        accepted = len(topic) <= self.max_topic
        held.topics[topic] = accepted
        self._count += 1
        if accepted:
            return Verdict(Action.SUBSCRIBE, topic, held.peer)
        reason = f"a topic of {len(topic)} bytes (at most {self.max_topic})"
        return Verdict(Action.REFUSE, topic, held.peer, reason)

    def _unsubscribe(self, held: _Held | None, topic: bytes) -> Verdict:
        if held is None:  # libzmq ending a connection's topics: it has freed them itself
            return Verdict(Action.IGNORE, topic)
        if not topic:
            return Verdict(Action.UNSUBSCRIBE, topic)
        accepted = held.topics.pop(topic, None)
        if accepted is None:  # never held: it frees nothing, so it earns no room
            return Verdict(Action.IGNORE, topic)
        self._count -= 1
        return Verdict(Action.UNSUBSCRIBE if accepted else Action.IGNORE, topic)

    def _full(self, held: _Held) -> str:
        """Why `held` may not hold one more topic ("" if it may)."""
        if len(held.topics) >= self.per_peer:
            return f"it subscribed to more than {self.per_peer} topics"
        if self._count >= self.total:
            self._sweep()
        if self._count >= self.total:
            return f"all connections hold {self.total} topics already"
        return ""

    def _sweep(self) -> None:
        """Let go of the connections that have ended (checked only once the bound is
        reached: libzmq says nothing of a connection's end that names it)."""
        for fd, held in list(self._connections.items()):
            if self._identify(fd) != held.peer:
                self._forget(held)
                del self._connections[fd]

    def _drop(self, held: _Held, reason: str) -> Verdict:
        """End the connection: libzmq frees all it holds for it, so it counts no more."""
        self._forget(held)
        held.dropped = True
        return Verdict(Action.DROP, peer=held.peer, reason=reason)

    def _forget(self, held: _Held) -> None:
        self._count -= len(held.topics)
        held.topics.clear()
