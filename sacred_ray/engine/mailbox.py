"""A running sweep's status and requests on its Ray cluster, for a shell that can reach the
cluster but not the sweep's folder: a laptop, while the driver runs on the head node as a
Ray Job (``--submit``).

The driver keeps, in the cluster's own key-value store (Ray's GCS, namespace ``sacred_ray``),
the status it writes to status.json, under ``sweep:NAME:status``; a request sent to the sweep is
a key ``sweep:NAME:request:ID`` that the driver takes (and deletes) as it reads control.jsonl.
Nothing runs for it on the cluster: no actor, no worker process, one small write a second.
The last status stays after the sweep ended (until the cluster stops), so a sweep is seen
from the cluster while it runs and after; a driver that died stops refreshing it, and its
status says so after SILENT_SECONDS.

Who may steer it is who can reach the cluster: Ray's own access (its port, a Ray Client
address, the network the cluster runs in) is the lock, as it is for running any code there.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Optional

from ..records import redact
from ..spec import SpecError

NAMESPACE = "sacred_ray"
CONNECT_SECONDS = 5.0  # how long a cluster's head gets to answer before a command gives up
SILENT_SECONDS = 30.0  # a driver whose status is older than this is taken for dead


def _status_key(sweep: str) -> str:
    return f"sweep:{sweep}:status"


def _request_prefix(sweep: str) -> str:
    return f"sweep:{sweep}:request:"


def _get(key: str) -> Optional[dict]:
    from ray.experimental.internal_kv import _internal_kv_get

    value = _internal_kv_get(key, namespace=NAMESPACE)
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def fresh(status: Optional[dict]) -> bool:
    """Whether a status is a running driver's (it rewrites it at least every few seconds)."""
    driver = (status or {}).get("driver") or {}
    return (status or {}).get("state") not in ("ended", None) and \
        time.time() - (driver.get("alive_at") or 0) < SILENT_SECONDS


class DriverMailbox:
    """The driver's end of it: ``publish`` a status, ``requests`` taken as they come."""

    def __init__(self, sweep: str):
        self.sweep = sweep

    @classmethod
    def open(cls, sweep: str) -> tuple:
        """``(DriverMailbox, None)``, or ``(None, why not)``: another running sweep of this name
        on the cluster has it (this one is then seen and steered through its folder only)."""
        try:
            other = _get(_status_key(sweep))
        except Exception as e:  # a Ray without a key-value store reachable from here
            return None, f"the sweep cannot be seen through its Ray cluster ({e.__class__.__name__})"
        driver = (other or {}).get("driver") or {}
        if fresh(other) and (driver.get("pid"), driver.get("host")) != (os.getpid(), socket.gethostname()):
            return None, (f"another running sweep named {sweep!r} is on this Ray cluster (pid {driver.get('pid')} "
                          f"on {driver.get('host')}): this one is seen and steered through its folder only")
        return cls(sweep), None

    def publish(self, status: dict) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        try:
            _internal_kv_put(_status_key(self.sweep), json.dumps(status), overwrite=True, namespace=NAMESPACE)
        except Exception:  # the cluster is going away: the folder has the status
            pass

    def requests(self) -> list:
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get, _internal_kv_list

        out = []
        try:
            for key in _internal_kv_list(_request_prefix(self.sweep), namespace=NAMESPACE):
                value = _internal_kv_get(key, namespace=NAMESPACE)
                _internal_kv_del(key, namespace=NAMESPACE)
                try:
                    out.append(json.loads(value))
                except (TypeError, ValueError):
                    continue
        except Exception:
            return out
        return out


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


def remote_status(sweep: str, address: str) -> dict:
    """The status of the sweep named ``sweep`` on the cluster at ``address`` (running or ended)."""
    connect(address)
    try:
        status = _get(_status_key(sweep))
    except Exception as e:
        raise SpecError(redact(address), sweep, f"the cluster did not answer ({e.__class__.__name__})") from None
    if status is None:
        raise SpecError(redact(address), sweep, "no sweep of this name has run on this Ray cluster since it started "
                                                "(check the name; a sweep's folder has its status too)")
    status["driver_alive"] = fresh(status)
    return status


def remote_send(sweep: str, address: str, req: dict, wait: float = 15.0) -> Any:
    """Hand ``req`` to the running sweep; its driver's outcome (as ``control.send``)."""
    from ray.experimental.internal_kv import _internal_kv_put

    status = remote_status(sweep, address)
    if not status["driver_alive"]:
        how = (status.get("ended") or {}).get("how") or "its driver is not heard from"
        raise SpecError(redact(address), sweep, f"the sweep is not running ({how})")
    _internal_kv_put(_request_prefix(sweep) + req["id"], json.dumps(req), overwrite=True, namespace=NAMESPACE)
    deadline = time.monotonic() + wait
    while True:
        status = _get(_status_key(sweep)) or {}
        for acted in status.get("acted") or []:
            if acted.get("id") == req["id"]:
                return acted.get("outcome")
        if time.monotonic() > deadline:
            raise SpecError(redact(address), sweep, f"the sweep's driver did not answer within {wait:g}s; it takes "
                                                    f"the request when it next looks")
        time.sleep(0.2)
