"""The hub: how trial events travel from a worker process to the sweep driver.

The sweeps in the other test files run every event through it end to end; these
tests pin down what those cannot show: order, the start round trip, the key, and a
driver that has gone away.
"""

from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

import pytest

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


def test_a_connection_without_the_key_is_refused_and_the_hub_keeps_serving(hub):
    with pytest.raises(AuthenticationError):
        Client(hub.address, family="AF_INET", authkey=b"not the key")
    link = DriverLink.to(hub.link)
    link.send("t", "heartbeat", {"n": 1})
    assert link.ask("t", "sync", None) == "ok"
    assert hub.get(0) == [("t", "heartbeat", {"n": 1})]


def test_a_silent_connection_does_not_hold_up_the_workers_after_it(hub):
    import socket

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
