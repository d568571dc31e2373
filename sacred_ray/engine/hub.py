"""The hub: where trial events reach the driver.

Each worker process opens one connection to the driver (TCP, authenticated with a
random key that travels with the tasks) and sends its trials' events over it, in
order. Reader threads put them on one queue; the driver's loop is the only consumer
and calls the observers. A ``start`` is answered by the driver (the run id its
observers assigned); ``sync`` is answered by the reader as soon as everything the
worker sent before it is queued, so a worker can know its events have arrived.

Why not a Ray actor: an actor call costs about a millisecond of Python on each side
and the actor is one more process to start; on two cores that overhead was larger
than the per-trial cost of the hand-written pattern the sweep must keep up with.
Ray nodes already reach each other on any port (Ray needs that), so a plain socket
to the driver's node works wherever the workers do.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from multiprocessing.connection import Listener, answer_challenge, deliver_challenge
from typing import Any

log = logging.getLogger("sacred_ray")

RETURNED = "returned"  # a task ended: (ref, RETURNED, its future) on the queue


class Hub:
    """The driver's end (see module docstring); ``link`` is what workers need to connect."""

    def __init__(self, host: str = "127.0.0.1"):
        self._key = os.urandom(32)
        # The key is checked per connection in its own thread (see _read), so a client that
        # connects and says nothing cannot hold up the workers that come after it.
        self._listener = Listener((host, 0), family="AF_INET")
        self.address = self._listener.address
        self.events: queue.Queue = queue.Queue()
        self._waiting: dict = {}  # token -> (connection, send lock) of a start to answer
        self._connections: list = []
        self._closed = False
        threading.Thread(target=self._accept, name="sacred-ray-hub", daemon=True).start()

    @property
    def link(self) -> dict:
        return {"address": self.address, "authkey": self._key}

    # -- the queue -------------------------------------------------------------
    def get(self, timeout: float) -> list:
        """Every event queued so far, waiting up to ``timeout`` seconds for the first."""
        items = []
        try:
            items.append(self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait())
            while True:
                items.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return items

    def watch(self, ref) -> None:
        """Queue ``(ref, RETURNED, future)`` when the Ray task behind ``ref`` ends; the
        future holds what ``ray.get(ref)`` would return or raise, already deserialized."""
        ref.future().add_done_callback(lambda future: self.events.put((ref, RETURNED, future)))

    def answer(self, token: str, answer: Any) -> None:
        """Answer the ``start`` that ``token`` sent: {"_id": ...} or {"error": ...}."""
        waiting = self._waiting.pop(token, None)
        if waiting is not None:
            _send(*waiting, (token, answer))

    # -- connections -----------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except OSError as e:  # the listener closing
                if not self._closed:
                    log.debug("hub: accept failed: %s", e)
                continue
            if self._closed:
                conn.close()
                return
            self._connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), name="sacred-ray-hub-reader", daemon=True).start()

    def _read(self, conn) -> None:
        try:
            deliver_challenge(conn, self._key)
            answer_challenge(conn, self._key)
        except Exception as e:  # not one of our workers
            log.debug("hub: refused a connection: %s", e)
            conn.close()
            return
        lock = threading.Lock()
        while True:
            try:
                token, kind, payload = conn.recv()
            except (EOFError, OSError):  # the worker process ended
                return
            except Exception as e:  # a message that does not unpickle here: keep the connection
                log.warning("hub: dropped an event that could not be read: %s", e)
                continue
            if kind == "sync":
                _send(conn, lock, (token, "ok"))
                continue
            if kind == "start":
                self._waiting[token] = (conn, lock)
            self.events.put((token, kind, payload))

    def close(self) -> None:
        self._closed = True
        try:  # wake the accept thread
            socket.create_connection(self.address, timeout=1).close()
        except OSError:
            pass
        self._listener.close()
        for conn in self._connections:
            conn.close()


def _send(conn, lock, message) -> None:
    try:
        with lock:
            conn.send(message)
    except OSError as e:  # the worker is gone; its task's end tells the driver the rest
        log.debug("hub: could not answer a worker: %s", e)


def start_hub() -> Hub:
    """A hub on this node's address as Ray knows it, so workers on other nodes reach it."""
    import ray

    return Hub(ray.util.get_node_ip_address())
