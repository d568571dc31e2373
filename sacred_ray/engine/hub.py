"""The hub: where trial events reach the driver.

Each worker process opens one connection to the driver (TCP, authenticated both ways
with a random key that travels with the tasks: ``sacred_ray.protocol``) and sends its
trials' events over it, in order. Reader threads put them on one queue; the driver's
loop is the only consumer and calls the observers. A ``START`` is answered by the driver
(the run id its observers assigned), as is a Tune trial's ``OPEN`` (whether its run goes
on an earlier one); ``SYNC`` is answered by the reader as soon as everything the worker
sent before it is queued, so a worker can know its events have arrived, and ``BEGUN`` by
the reader too, from ``holding``: a paused sweep's worker returns its task without
starting the run. Deciding there, at the one moment the worker asks, is what makes a pause
exact: a task taken back through Ray instead may already be running its trial. A body the
driver cannot read arrives as ``UNREADABLE`` with its token, so the driver can fail that
trial (and answer its start) instead of leaving it waiting.

Many workers may connect at once (a cluster's first wave of trials): the listen backlog
is the system's largest, each new connection is checked in its own thread with a bound
on how long its peer may take, and workers retry with jittered pauses.

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
from typing import Any

from .. import protocol
from ..messages import BEGUN, GO, HOLD, OPEN, RETURNED, START, SYNC, UNREADABLE

log = logging.getLogger("sacred_ray")

ANSWERED = (START, OPEN)  # the messages whose worker waits for the driver's answer


class Hub:
    """The driver's end (see module docstring); ``link`` is what workers need to connect."""

    def __init__(self, host: str = "127.0.0.1", handshake_seconds: float = protocol.HANDSHAKE_SECONDS):
        self._key = os.urandom(32)
        self._handshake_seconds = handshake_seconds
        self._listener = socket.create_server((host, 0), backlog=socket.SOMAXCONN)
        self.address = self._listener.getsockname()[:2]
        self.events: queue.Queue = queue.Queue()
        self._waiting: dict = {}  # token -> (connection, send lock) of a start to answer
        self._connections: list = []
        self._closed = False
        self.holding = False  # set while the sweep is paused: every BEGUN is answered HOLD
        threading.Thread(target=self._accept, name="sacred-ray-hub", daemon=True).start()

    @property
    def link(self) -> dict:
        return {"address": self.address, "authkey": self._key, "pid": os.getpid()}  # pid: see worker/guard.py

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
        """Answer the ``START`` or ``OPEN`` that ``token`` sent (a ``StartAnswer``, an ``Opened``)."""
        waiting = self._waiting.pop(token, None)
        if waiting is not None:
            _send(*waiting, (token, answer))

    # -- connections -----------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError as e:  # the listener closing
                if not self._closed:
                    log.debug("hub: accept failed: %s", e)
                continue
            if self._closed:
                sock.close()
                return
            threading.Thread(target=self._read, args=(sock,), name="sacred-ray-hub-reader", daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        try:
            conn = protocol.accept_peer(sock, self._key, self._handshake_seconds)
        except Exception as e:  # not one of our workers, or one that said nothing in time
            log.debug("hub: refused a connection: %s", e)
            return
        self._connections.append(conn)
        lock = threading.Lock()
        while True:
            try:
                token, kind, payload = protocol.open_envelope(conn.recv_bytes())
            except (EOFError, OSError):  # the worker process ended
                return
            except Exception as e:  # an envelope that is not ours: nothing names a trial to fail
                log.warning("hub: dropped a message that could not be read: %s", e)
                continue
            if kind == SYNC:
                _send(conn, lock, (token, "ok"))
                continue
            if kind == BEGUN:
                held = self.holding
                if not held:  # a held task returns at once, its end saying so: nothing to queue
                    self.events.put((token, kind, payload))
                _send(conn, lock, (token, HOLD if held else GO))
                continue
            if kind in ANSWERED or (kind == UNREADABLE and payload.get("kind") in ANSWERED):
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
