"""The hub: how trial events travel from a worker process to the sweep driver.

The sweeps in the other test files run every event through it end to end; these
tests pin down what those cannot show: order, the start round trip, the key, and a
driver that has gone away.
"""

import socket
import threading
import time

import pytest

from sacred_ray import messages, protocol
from sacred_ray.engine.hub import Hub
from sacred_ray.worker.observer import DriverLink, ObserverStartError


@pytest.fixture
def hub():
    h = Hub("127.0.0.1")
    yield h
    h.close()


def test_events_arrive_in_order_and_sync_means_all_have_arrived(hub):
    link = DriverLink.to(hub.link)
    for i in range(200):
        link.send("trial-1", "heartbeat", {"n": i})
    assert link.ask("trial-1", "sync", None) == "ok"
    events = hub.get(0)
    assert [p["n"] for _, kind, p in events if kind == "heartbeat"] == list(range(200))


def test_a_start_waits_for_the_drivers_answer(hub):
    import threading

    link = DriverLink.to(hub.link)
    answers = []
    asker = threading.Thread(target=lambda: answers.append(link.ask("trial-7", "start", {"config": {"lr": 0.1}})))
    asker.start()
    (token, kind, payload), = hub.get(5)
    assert (token, kind, payload) == ("trial-7", "start", {"config": {"lr": 0.1}})
    assert answers == []  # still waiting
    hub.answer(token, {"_id": 42})
    asker.join(5)
    assert answers == [{"_id": 42}]


def test_a_worker_that_takes_its_trial_while_the_sweep_is_paused_is_told_to_hold_it(hub):
    """The pause is decided where the worker asks, so no trial that began is ever taken back."""
    link = DriverLink.to(hub.link)
    worker = {"pid": 1, "node_id": "n"}
    assert link.ask("trial-1", messages.BEGUN, worker) == messages.GO
    hub.holding = True
    assert link.ask("trial-2", messages.BEGUN, worker) == messages.HOLD
    hub.holding = False
    assert link.ask("trial-3", messages.BEGUN, worker) == messages.GO
    # the driver hears of the trials that run, not of the one held (its task returns at once)
    assert [(t, k) for t, k, _ in hub.get(0)] == [("trial-1", "begun"), ("trial-3", "begun")]


def test_a_connection_without_the_key_is_refused_and_the_hub_keeps_serving(hub):
    with pytest.raises(protocol.HandshakeError, match="wrong key"):
        protocol.connect_to(hub.address, b"not the key")
    link = DriverLink.to(hub.link)
    link.send("t", "heartbeat", {"n": 1})
    assert link.ask("t", "sync", None) == "ok"
    assert hub.get(0) == [("t", "heartbeat", {"n": 1})]


def test_a_silent_connection_does_not_hold_up_the_workers_after_it(hub):
    silent = socket.create_connection(hub.address)  # connects, never answers the challenge
    try:
        link = DriverLink.to(hub.link)
        link.send("t", "heartbeat", {"n": 2})
        assert link.ask("t", "sync", None) == "ok"
        assert hub.get(0) == [("t", "heartbeat", {"n": 2})]
    finally:
        silent.close()


def test_a_driver_that_went_away_fails_the_start_and_not_the_other_events():
    hub = Hub("127.0.0.1")
    link = DriverLink.to(hub.link)
    link.ask("t", "sync", None)
    hub.close()
    for _ in range(50):  # sends into a closed connection end without raising
        link.send("t", "heartbeat", {"n": 1})
    with pytest.raises(ObserverStartError, match="lost the connection to the sweep driver"):
        link.ask("t", "start", {})


def _readers():
    return sum(1 for t in threading.enumerate() if t.name == "sacred-ray-hub-reader")


@pytest.mark.slow
def test_a_connection_that_never_speaks_holds_no_thread_past_the_handshake_bound():
    hub = Hub("127.0.0.1", handshake_seconds=2.0)
    try:
        before = _readers()
        silent = [socket.create_connection(hub.address) for _ in range(5)]
        deadline = time.time() + 5
        while _readers() < before + 5 and time.time() < deadline:
            time.sleep(0.02)
        assert _readers() >= before + 5  # each is checked in a thread of its own ...
        deadline = time.time() + 15
        while _readers() > before and time.time() < deadline:
            time.sleep(0.1)
        assert _readers() == before  # ... which gives up on a peer that says nothing
        for s in silent:  # and the hub closed them: its challenge, then the end of the stream
            s.settimeout(2)
            received = b""
            while chunk := s.recv(1024):
                received += chunk
            assert received.startswith(protocol._HELLO) and len(received) == len(protocol._HELLO) + 32
            s.close()
        link = protocol.connect_to(hub.address, hub.link["authkey"])
        link.send_bytes(protocol.envelope("t", messages.HEARTBEAT, {"n": 3}))
        assert hub.get(5) == [("t", messages.HEARTBEAT, {"n": 3})]
    finally:
        hub.close()


@pytest.mark.parametrize("workers", [128])
def test_a_burst_of_workers_connecting_at_once_all_get_through(hub, workers):
    """A cluster's first wave: every worker process connects in the same instant. With
    multiprocessing's default listen backlog of 1 and no timeouts, about half hung."""
    from sacred_ray.worker.observer import DriverLink

    go = threading.Barrier(workers)
    done, errors = [], []

    def worker(i):
        try:
            go.wait()
            link = DriverLink(*hub.link.values())
            link.send(f"trial-{i}", messages.HEARTBEAT, {"n": i})
            assert link.ask(f"trial-{i}", messages.SYNC, None, timeout=60) == "ok"
            done.append(i)
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a worker hung connecting to the hub"
    assert errors == []
    assert sorted(done) == list(range(workers))
    got = sorted(p["n"] for _, kind, p in hub.get(1) if kind == messages.HEARTBEAT)
    assert got == list(range(workers))


def test_a_body_the_driver_cannot_read_still_names_its_trial(hub):
    """The envelope always opens, so the driver can fail that one trial and answer its start."""
    import pickle

    conn = protocol.connect_to(hub.address, hub.link["authkey"])
    body = pickle.dumps(1).replace(b"K\x01", b"c" + b"no_such_module_here\nThing\n")  # a global it cannot import
    conn.send_bytes(pickle.dumps(("trial-9", messages.START, body)))
    (token, kind, payload), = hub.get(5)
    assert (token, kind, payload["kind"]) == ("trial-9", messages.UNREADABLE, messages.START)
    assert "no_such_module_here" in payload["error"]
    hub.answer(token, {"error": "could not read it"})
    assert conn.poll(5)
    assert conn.recv() == ("trial-9", {"error": "could not read it"})
