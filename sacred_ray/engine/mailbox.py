"""A running sweep's status and requests on its Ray cluster, for a shell that can reach the
cluster but not the sweep's folder: a laptop, while the driver runs on the head node as a
Ray Job (``--submit``).

The driver makes one small actor (no CPU), named after the sweep in the ``sacred_ray``
namespace. It holds the last status the driver wrote (the dict status.json holds) and the
requests sent to the sweep; the driver publishes each status as it writes status.json and
collects the requests as it reads control.jsonl, never waiting on the actor. The actor is
the driver's own, so it ends with the driver: a sweep found on a cluster is running.

Who may steer it is who can reach the cluster: Ray's own access (its port, a Ray Client
address, the network the cluster runs in) is the lock, as it is for running any code there.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Optional

from ..records import redact
from ..spec import SpecError

NAMESPACE = "sacred_ray"
CONNECT_SECONDS = 5.0  # how long a cluster's head gets to answer before a command gives up
ANSWER_SECONDS = 10.0  # how long the sweep's actor gets to answer


def actor_name(sweep: str) -> str:
    return f"sweep:{sweep}"


class Mailbox:
    """The actor: the sweep's last status and the requests not yet taken by its driver."""

    def __init__(self):
        self.status: Optional[dict] = None
        self.requests: list = []

    def put(self, status: dict) -> None:
        self.status = status

    def get(self) -> Optional[dict]:
        return self.status

    def ask(self, req: dict) -> None:
        self.requests.append(req)

    def take(self) -> list:
        out, self.requests = self.requests, []
        return out


class DriverMailbox:
    """The driver's end of it: ``publish`` a status, ``requests`` collected without waiting."""

    def __init__(self, handle):
        self.handle = handle
        self._taking = None

    @classmethod
    def open(cls, sweep: str) -> tuple:
        """``(DriverMailbox, None)``, or ``(None, why not)`` (another running sweep of this name
        on the cluster has the name: this one is then seen through its folder only)."""
        import ray

        try:
            handle = ray.remote(num_cpus=0, max_restarts=0)(Mailbox).options(
                name=actor_name(sweep), namespace=NAMESPACE).remote()
        except ValueError:
            return None, (f"another running sweep named {sweep!r} is on this Ray cluster: this one is seen and "
                          f"steered through its folder only")
        return cls(handle), None

    def publish(self, status: dict) -> None:
        try:
            self.handle.put.remote(status)
        except Exception:  # the cluster is going away with the driver: its folder has the status
            pass

    def close(self) -> None:
        """End the actor (a caller's Ray outlives the sweep; its name is free for the next one)."""
        import ray

        try:
            ray.kill(self.handle, no_restart=True)
        except Exception:
            pass

    def requests(self) -> list:
        import ray

        try:
            if self._taking is None:
                self._taking = self.handle.take.remote()
                return []
            ready, _ = ray.wait([self._taking], timeout=0)
            if not ready:
                return []
            out = ray.get(self._taking)
            self._taking = self.handle.take.remote()
            return out if isinstance(out, list) else []
        except Exception:
            return []


# -- a shell's end --------------------------------------------------------------------
def connect(address: str) -> None:
    """Join the cluster at ``address`` (host:port of its head, a Ray Client ray://host:port,
    or auto); SpecError in one line, within seconds, when nothing answers there."""
    import ray

    if ray.is_initialized():
        return
    if address not in ("auto", "local"):
        plain = address[len("ray://"):] if address.startswith("ray://") else address
        host, colon, port = plain.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise SpecError("command line", "--address", f"{redact(address)!r} is not a Ray address; give host:port "
                                                         f"of the head node (6379), ray://host:10001, or auto")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
        except OSError as e:
            raise SpecError("command line", "--address", f"cannot reach a Ray cluster at {redact(address)} "
                                                         f"({e.strerror or e.__class__.__name__})") from None
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level="error", log_to_driver=False)
    except Exception as e:
        raise SpecError("command line", "--address", f"cannot join the Ray cluster at {redact(address)}: "
                                                     f"{str(e).splitlines()[0] if str(e) else e.__class__.__name__}") from None


def find(sweep: str, address: str):
    """The running sweep's actor on the cluster at ``address``."""
    import ray

    connect(address)
    try:
        return ray.get_actor(actor_name(sweep), namespace=NAMESPACE)
    except ValueError:
        raise SpecError(redact(address), sweep, "no sweep of this name is running on this Ray cluster (an ended "
                                                "sweep's status is in its folder: sweep_status sweeps/NAME where "
                                                "it ran)") from None


def remote_status(sweep: str, address: str) -> dict:
    import ray

    actor = find(sweep, address)
    try:
        status = ray.get(actor.get.remote(), timeout=ANSWER_SECONDS)
    except Exception as e:
        raise SpecError(redact(address), sweep, f"the sweep's driver did not answer ({e.__class__.__name__})") from None
    return dict(status) if status else {"name": sweep, "state": "starting", "counts": {}, "running": []}


def remote_send(sweep: str, address: str, req: dict, wait: float = 15.0) -> Any:
    """Hand ``req`` to the running sweep; its driver's outcome (as ``control.send``)."""
    import ray

    actor = find(sweep, address)
    try:
        ray.get(actor.ask.remote(req), timeout=ANSWER_SECONDS)
    except Exception as e:
        raise SpecError(redact(address), sweep, f"the sweep's driver did not take the request "
                                                f"({e.__class__.__name__}): it has ended") from None
    deadline = time.monotonic() + wait
    while True:
        try:
            status = ray.get(actor.get.remote(), timeout=ANSWER_SECONDS) or {}
        except Exception:  # the actor ended with its driver: the request was its last
            return f"{req['action']}: the sweep's driver took it and has ended"
        for acted in status.get("acted") or []:
            if acted.get("id") == req["id"]:
                return acted.get("outcome")
        if time.monotonic() > deadline:
            raise SpecError(redact(address), sweep, f"the sweep's driver did not answer within {wait:g}s; it takes "
                                                    f"the request when it next looks")
        time.sleep(0.2)
