"""How messages cross between a trial's worker process and the sweep's driver (their kinds
and bodies are ``sacred_ray.messages``).

Every message is ``(token, kind, body)`` where the body is pickled apart from its envelope, so a body the driver cannot read still names
its trial: the driver fails that trial with the reason instead of dropping the message
(and leaving a worker waiting for an answer).

A worker imports the experiment's file under a private module name
(``sacred_ray_experiment_<hash>``, see ``worker.core.load_experiment``), so a class
defined in the experiment (an Enum or a dataclass in the config, a result object) would
be pickled as ``sacred_ray_experiment_<hash>.Color``, a module the driver does not have. ``dumps``
writes such classes under the driver's name for the same file (``__main__`` for a
script), where the driver finds them. A value that cannot be pickled at all (a lock, a
lambda in ``_run.info``) crosses as ``Encoded``: the form Sacred's own observers store
(``sacred.serializer.flatten``), which they then store unchanged.

Connections are authenticated both ways with an HMAC of a random challenge, with a
bound on every wait: a peer that connects and says nothing costs one thread for at most
``HANDSHAKE_SECONDS``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import importlib
import io
import os
import pickle
import random
import socket
import sys
import time
from typing import Any, Optional

from .messages import UNREADABLE

FOLLOW_LOGGING = "sacred_ray.follow_logging"  # in a job's options: logging handlers write into the capture
LOST_DRIVER = "the sweep's driver went away"  # the stop reason of a run whose driver died under it

HANDSHAKE_SECONDS = 10.0  # a peer gets this long to prove it holds the key
CONNECT_SECONDS = 60.0    # a worker keeps trying to reach the driver this long
ANSWER_SECONDS = 120.0    # a worker waits this long for the driver to answer a start or a sync

_CHALLENGE = 32
_HELLO = b"sacred-ray/1"


# -- bodies ------------------------------------------------------------------------
class Encoded:
    """A value that could not cross as itself: held in the form Sacred's observers store
    (``flatten``), which ``sacred.serializer.flatten`` gives back unchanged."""

    def __init__(self, flat: Any, text: str):
        self.flat = flat
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other) -> bool:
        return isinstance(other, Encoded) and other.flat == self.flat

    __hash__ = None


def _register_encoded_with_jsonpickle() -> None:
    import jsonpickle.handlers

    class EncodedHandler(jsonpickle.handlers.BaseHandler):
        def flatten(self, obj, data):
            return obj.flat

        def restore(self, obj):  # pragma: no cover - observers only write
            return obj

    jsonpickle.handlers.register(Encoded, EncodedHandler)


try:
    _register_encoded_with_jsonpickle()
except ImportError:  # no jsonpickle, no Sacred: nothing stores flattened values
    pass


def find_class(module: str, qualname: str):
    """A class by module and qualified name (how ``dumps`` refers to the experiment's classes)."""
    found = sys.modules.get(module) or importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class _Pickler(pickle.Pickler):
    def __init__(self, file, renames: dict):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.renames = renames

    def reducer_override(self, obj):
        if isinstance(obj, type) and obj.__module__ in self.renames:
            return find_class, (self.renames[obj.__module__], obj.__qualname__)
        return NotImplemented


def dumps(value: Any, renames: Optional[dict] = None) -> bytes:
    """Pickle ``value`` for the driver (see the module docstring); never raises for user data."""
    renames = renames or {}
    try:
        return _dumps(value, renames)
    except Exception:
        return _dumps(_encode_unpicklable(value, renames), renames)


def _dumps(value: Any, renames: dict) -> bytes:
    if not renames:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    _Pickler(buffer, renames).dump(value)
    return buffer.getvalue()


def _encode_unpicklable(value: Any, renames: dict) -> Any:
    """``value`` with every part that does not pickle replaced by its ``Encoded`` form."""
    if isinstance(value, dict) and type(value) is dict:
        return {k: _encode_unpicklable(v, renames) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_encode_unpicklable(v, renames) for v in value)
    try:
        _dumps(value, renames)
        return value
    except Exception:
        return encoded(value, renames)


def snapshot(value: Any, renames: Optional[dict] = None) -> Any:
    """A copy of ``value`` as it is now (a run's info changes after a heartbeat is taken);
    a part that cannot be copied is taken in its ``Encoded`` form."""
    try:
        return copy.deepcopy(value)
    except Exception:
        if isinstance(value, dict):
            return {k: snapshot(v, renames) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(snapshot(v, renames) for v in value) if type(value) in (list, tuple) else [
                snapshot(v, renames) for v in value]
        return encoded(value, renames)


def encoded(value: Any, renames: Optional[dict] = None) -> Encoded:
    """``value`` as Sacred's observers would store it, with classes named as the driver names them."""
    try:
        from sacred.serializer import flatten

        flat = _renamed(flatten(value), renames or {})
    except Exception:
        flat = repr(value)
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return Encoded(flat, text)


def _renamed(flat: Any, renames: dict) -> Any:
    if isinstance(flat, dict):
        return {k: (_rename(v, renames) if isinstance(k, str) and k.startswith("py/") and isinstance(v, str)
                    else _renamed(v, renames)) for k, v in flat.items()}
    if isinstance(flat, list):
        return [_renamed(v, renames) for v in flat]
    return flat


def _rename(name: str, renames: dict) -> str:
    module, dot, rest = name.partition(".")
    return renames[module] + dot + rest if module in renames else name


def loads(data: bytes) -> Any:
    return pickle.loads(data)  # noqa: S301 - bodies come from authenticated workers of this sweep


def envelope(token: str, kind: str, body: Any, renames: Optional[dict] = None) -> bytes:
    return pickle.dumps((token, kind, dumps(body, renames)), protocol=pickle.HIGHEST_PROTOCOL)


def open_envelope(data: bytes) -> tuple:
    """``(token, kind, body)``; a body that cannot be read here becomes an UNREADABLE message."""
    token, kind, body = loads(data)
    try:
        return token, kind, loads(body)
    except Exception as e:
        return token, UNREADABLE, {"kind": kind, "error": f"{e.__class__.__name__}: {e}"}


# -- connections ---------------------------------------------------------------------
class HandshakeError(ConnectionError):
    """The peer did not prove it holds the sweep's key in time."""


def _digest(key: bytes, challenge: bytes) -> bytes:
    return hmac.new(key, challenge, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise HandshakeError("the peer closed the connection")
        data += chunk
    return data


def _prove_and_check(sock: socket.socket, key: bytes) -> None:
    """Both ends run this: send a challenge, answer the peer's, check the peer's answer."""
    mine = os.urandom(_CHALLENGE)
    sock.sendall(_HELLO + mine)
    hello = _recv_exact(sock, len(_HELLO) + _CHALLENGE)
    if not hello.startswith(_HELLO):
        raise HandshakeError("not a sacred-ray peer")
    sock.sendall(_digest(key, hello[len(_HELLO):]))
    if not hmac.compare_digest(_recv_exact(sock, hashlib.sha256().digest_size), _digest(key, mine)):
        raise HandshakeError("wrong key")


def accept_peer(sock: socket.socket, key: bytes, timeout: float = HANDSHAKE_SECONDS):
    """The driver's end of a new connection: a ``multiprocessing`` Connection once the peer
    proved it holds ``key`` within ``timeout`` seconds; raises (and closes) otherwise."""
    from multiprocessing.connection import Connection

    try:
        sock.settimeout(timeout)
        _prove_and_check(sock, key)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return Connection(sock.detach())
    except BaseException:
        sock.close()
        raise


def connect_to(address: tuple, key: bytes, deadline_seconds: float = CONNECT_SECONDS,
               timeout: float = HANDSHAKE_SECONDS):
    """A worker's authenticated connection to the driver at ``address``, retried with growing,
    jittered pauses (a burst of workers starting together spreads out) for up to
    ``deadline_seconds``; raises ConnectionError with the last reason after that."""
    from multiprocessing.connection import Connection

    deadline = time.monotonic() + deadline_seconds
    pause = 0.05
    while True:
        sock = None
        try:
            sock = socket.create_connection(tuple(address), timeout=timeout)
            _prove_and_check(sock, key)
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            return Connection(sock.detach())
        except HandshakeError as e:
            if sock is not None:
                sock.close()
            if "wrong key" in str(e):
                raise
            last: Exception = e
        except OSError as e:
            if sock is not None:
                sock.close()
            last = e
        if time.monotonic() + pause > deadline:
            raise ConnectionError(f"cannot reach the sweep driver at {address[0]}:{address[1]}: {last}")
        time.sleep(pause * (0.5 + random.random()))  # noqa: S311 - jitter, not secrecy
        pause = min(pause * 2, 2.0)
