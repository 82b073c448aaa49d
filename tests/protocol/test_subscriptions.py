"""What the IOPub guard says of each (un)subscription: per connection and in all, counting
unsubscriptions; connections told apart by descriptor and inode. Fuzzed too: whatever
peers send, no connection is counted over its share and the total never over its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ciao.protocol.peers import Peer
from ciao.protocol.subscriptions import Action, SubscriptionGuard

HOST = "127.0.0.1"


class Connections:
    """Stand-in descriptors: fd -> the connection on it now (None: closed)."""

    def __init__(self) -> None:
        self.now: dict[int, Peer | None] = {}
        self._inode = 1000

    def open(self, fd: int, port: int = 40000) -> Peer:
        self._inode += 1
        self.now[fd] = Peer(fd, (1, self._inode), (HOST, 5555), (HOST, port))
        return self.now[fd]

    def identify(self, fd: int) -> Peer | None:
        return self.now.get(fd)


def guard(connections: Connections, per_peer: int = 3, total: int = 5) -> SubscriptionGuard:
    return SubscriptionGuard(
        connections.identify, lambda peer: True, per_peer=per_peer, total=total, max_topic=8
    )


def sub(topic: bytes) -> bytes:
    return b"\x01" + topic


def unsub(topic: bytes) -> bytes:
    return b"\x00" + topic


def test_the_empty_topic_jupyter_subscribes_to_is_always_accepted_and_never_counted():
    connections = Connections()
    g = guard(connections, per_peer=1, total=1)
    connections.open(7)
    for _ in range(100):
        assert g.on_message(sub(b""), 7, HOST).action is Action.SUBSCRIBE
    assert g.count == 0


def test_a_connection_over_its_share_is_dropped_once_and_its_backlog_ignored():
    connections = Connections()
    g = guard(connections)
    peer = connections.open(7)
    assert [g.on_message(sub(b"t%d" % i), 7, HOST).action for i in range(3)] == [
        Action.SUBSCRIBE
    ] * 3
    verdict = g.on_message(sub(b"t3"), 7, HOST)
    assert verdict.action is Action.DROP and verdict.peer == peer
    assert "more than 3" in verdict.reason
    assert g.count == 0  # libzmq frees what it held for it
    assert g.on_message(sub(b"t4"), 7, HOST).action is Action.IGNORE  # read before its end


def test_a_repeated_topic_costs_nothing_and_is_not_counted_twice():
    connections = Connections()
    g = guard(connections)
    connections.open(7)
    for _ in range(10):
        assert g.on_message(sub(b"same"), 7, HOST).action is Action.SUBSCRIBE
    assert g.count == 1


def test_unsubscribing_frees_room_but_cancelling_a_topic_never_held_earns_none():
    connections = Connections()
    g = guard(connections)
    connections.open(7)
    for i in range(3):
        g.on_message(sub(b"t%d" % i), 7, HOST)
    for i in range(50):
        assert g.on_message(unsub(b"never%d" % i), 7, HOST).action is Action.IGNORE
    assert g.on_message(sub(b"t3"), 7, HOST).action is Action.DROP
    connections.open(8)
    for round_ in range(20):
        topics = [b"r%d.%d" % (round_, i) for i in range(3)]
        assert {g.on_message(sub(t), 8, HOST).action for t in topics} == {Action.SUBSCRIBE}
        assert {g.on_message(unsub(t), 8, HOST).action for t in topics} == {Action.UNSUBSCRIBE}
    assert g.count == 0


def test_a_long_topic_is_refused_but_counted_as_libzmq_holds_it():
    connections = Connections()
    g = guard(connections)
    connections.open(7)
    verdict = g.on_message(sub(b"x" * 9), 7, HOST)
    assert verdict.action is Action.REFUSE and "9 bytes" in verdict.reason
    assert g.count == 1
    assert g.on_message(unsub(b"x" * 9), 7, HOST).action is Action.IGNORE  # not in the trie
    assert g.count == 0


def test_the_total_bound_drops_the_connection_that_would_pass_it():
    connections = Connections()
    g = guard(connections, per_peer=3, total=5)
    for fd in (7, 8):
        connections.open(fd)
    for i in range(3):
        g.on_message(sub(b"a%d" % i), 7, HOST)
    g.on_message(sub(b"b0"), 8, HOST)
    g.on_message(sub(b"b1"), 8, HOST)
    verdict = g.on_message(sub(b"b2"), 8, HOST)
    assert verdict.action is Action.DROP and "all connections hold 5" in verdict.reason


def test_connections_that_ended_are_let_go_once_the_bound_is_reached():
    connections = Connections()
    g = guard(connections, per_peer=3, total=5)
    for fd in (7, 8):
        connections.open(fd)
        for i in range(2):
            g.on_message(sub(b"%d.%d" % (fd, i)), fd, HOST)
    connections.now[7] = None  # it ended; libzmq's unsubscriptions for it name no one
    assert g.on_message(unsub(b"7.0"), None, None).action is Action.IGNORE
    connections.open(9)
    assert g.on_message(sub(b"9.0"), 9, HOST).action is Action.SUBSCRIBE
    assert g.on_message(sub(b"9.1"), 9, HOST).action is Action.SUBSCRIBE  # 7's were let go
    assert g.count == 4


def test_a_new_connection_on_a_reused_descriptor_and_port_starts_afresh():
    connections = Connections()
    g = guard(connections)
    connections.open(7, port=40000)
    for i in range(4):
        g.on_message(sub(b"t%d" % i), 7, HOST)  # the fourth drops it
    connections.open(7, port=40000)  # same number, same port: another socket (inode)
    assert g.on_message(sub(b"t0"), 7, HOST).action is Action.SUBSCRIBE


def test_a_message_from_a_connection_that_is_gone_changes_nothing():
    connections = Connections()
    g = guard(connections)
    connections.open(7)
    connections.now[7] = None
    assert g.on_message(sub(b"t"), 7, HOST).action is Action.IGNORE
    assert g.on_message(b"junk", 7, HOST).action is Action.IGNORE
    connections.open(8)
    assert g.on_message(sub(b"t"), 8, "10.0.0.9").action is Action.IGNORE  # not its address
    assert g.count == 0


def test_a_peer_that_sends_anything_but_subscriptions_is_dropped():
    connections = Connections()
    g = guard(connections)
    connections.open(7)
    assert g.on_message(b"\x05data", 7, HOST).action is Action.DROP
    connections.open(8)
    assert g.on_message(b"", 8, HOST).action is Action.DROP


def test_peers_without_a_descriptor_are_refused_beyond_the_bound_but_never_dropped():
    connections = Connections()
    g = guard(connections, per_peer=2, total=5)
    assert [g.on_message(sub(b"t%d" % i), None, None).action for i in range(3)] == [
        Action.SUBSCRIBE,
        Action.SUBSCRIBE,
        Action.REFUSE,
    ]


messages = st.lists(
    st.tuples(
        st.sampled_from([None, 3, 4, 5]),
        st.one_of(
            st.binary(max_size=3),
            st.tuples(st.sampled_from([b"\x00", b"\x01"]), st.binary(max_size=10)).map(
                lambda parts: parts[0] + parts[1]
            ),
        ),
        st.sampled_from(["keep", "close", "reconnect"]),
    ),
    max_size=200,
)


@settings(max_examples=500, deadline=None)
@given(messages)
def test_whatever_peers_send_no_one_holds_more_than_its_share(sequence):
    connections = Connections()
    g = guard(connections, per_peer=3, total=7)
    for fd in (3, 4, 5):
        connections.open(fd)
    for fd, data, then in sequence:
        verdict = g.on_message(data, fd, HOST)
        if verdict.action is Action.DROP or then == "close":
            connections.now[fd or 3] = None
        if then == "reconnect":
            connections.open(fd or 3)
        held = [len(h.topics) for h in g._connections.values()] + [len(g._anonymous.topics)]
        assert g.count == sum(held) <= 7
        assert max(held) <= 3
