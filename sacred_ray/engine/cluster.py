"""Joining or starting Ray, shipping the experiment's folder, and checking resource requests."""

from __future__ import annotations

import logging
import math
import os
from typing import Optional

from ..spec import Resources, SpecError

log = logging.getLogger("sacred_ray")

SCALE_WAIT_SECONDS = 120.0  # how long a sweep on a cluster waits for the autoscaler to fit a trial
DEFAULT_EXCLUDES = [".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info"]


def runtime_env_for(experiment_dir: str, user_env: dict, excludes: list) -> dict:
    """The experiment's folder as Ray's working_dir, with the user's runtime_env merged in."""
    env = {"working_dir": experiment_dir, "excludes": DEFAULT_EXCLUDES + excludes}
    for key, value in (user_env or {}).items():
        if key == "excludes":
            env["excludes"] = env["excludes"] + list(value)
        else:
            env[key] = value
    if env.get("working_dir") is None:
        env.pop("working_dir")
        env.pop("excludes", None)
    return env


def starts_local_ray(address: Optional[str]) -> bool:
    """Whether ``ray.init(address)`` would start a new Ray on this machine (nothing to ship then)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) is None
    except Exception:  # an address Ray cannot resolve: let ray.init report it
        return False


def connect(address: Optional[str], runtime_env: dict) -> None:
    """Join the cluster at ``address`` (or RAY_ADDRESS); otherwise Ray's own rule applies:
    join the cluster running on this machine, else start a private local one."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # max_retries=0 does not cover out-of-memory kills, which Ray retries without end by
    # default; every retry would be a new Sacred run. The owner (this driver) reads this.
    os.environ.setdefault("RAY_task_oom_retries", "0")
    kwargs = dict(log_to_driver=False, logging_level="error", runtime_env=runtime_env or None)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address in (None, "local"):
        kwargs["include_dashboard"] = False
    _quiet_worker_deaths()
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise SpecError("ray", "address", f"cannot reach a Ray cluster at {address!r} ({e}); check --address / RAY_ADDRESS") from None
    except ValueError as e:
        if "include_dashboard" not in str(e):
            raise
        kwargs.pop("include_dashboard")
        ray.init(address=address, **kwargs)


WORKER_DIED = "A worker died or was killed while executing a task"


def _quiet_worker_deaths() -> None:
    """Keep Ray's "(raylet) A worker died ..." paragraph off the screen: the sweep reports each
    such trial itself (FAILED, "worker died: ..." in its trace and at the end). Ray prints the
    errors it publishes to a driver through ``print_to_stdstream``, which its listener looks up
    at each call; every other message still reaches the screen, and these reach the log."""
    from ray._private import worker

    show = getattr(worker, "print_to_stdstream", None)
    if show is None or getattr(show, "_sacred_ray", False):
        return

    def filtered(data, ignore_prefix):
        lines = data.get("lines") or []
        if data.get("pid") == "raylet" and lines and all(WORKER_DIED in str(line) for line in lines):
            log.debug("%s", " ".join(map(str, lines)))
            return None
        return show(data, ignore_prefix)

    filtered._sacred_ray = True
    worker.print_to_stdstream = filtered


def disconnect() -> None:
    """``ray.shutdown()``, a second sooner when this process started the Ray it leaves.

    Ray stops its autoscaler monitor after the GCS; the monitor's SIGTERM handler then
    tries to report to the GCS that is gone, until Ray kills it a second later. A Ray
    started here has nothing to autoscale, so the monitor is killed first, at once. For a
    Ray this process joined (not the head's owner) nothing changes; if Ray's internals
    differ, neither does anything, and the shutdown is Ray's own."""
    import gc

    import ray

    # Objects that hold Ray references in reference cycles (a Tune search's scheduler state, PBT's
    # pending checkpoints) go while Ray is still up: collected after shutdown, their ObjectRefs
    # reach a core worker that is gone, and Ray ends the process there.
    gc.collect()
    try:
        from ray._private.worker import _global_node as node

        if node is not None and node.is_head():
            node.kill_monitor(check_alive=False)
    except Exception as e:  # another Ray: its own shutdown still runs
        log.debug("could not stop Ray's monitor first: %s", e)
    ray.shutdown()


def ray_request(res: Resources) -> dict:
    """A Resources record as keyword arguments of ``.options()`` on a Ray task."""
    out: dict = {"num_cpus": 1 if res.cpu is None else res.cpu}
    if res.gpu:
        out["num_gpus"] = res.gpu
    if res.memory:
        out["memory"] = res.memory
    if res.custom:
        out["resources"] = dict(res.custom)
    return out


def _needs(request: dict) -> dict:
    need = {"CPU": request.get("num_cpus", 1), "GPU": request.get("num_gpus", 0), "memory": request.get("memory", 0)}
    need.update(request.get("resources", {}))
    return {k: v for k, v in need.items() if v}


def local_resources() -> dict:
    """What a Ray started on this machine will offer (CPU, GPU), detected as Ray does."""
    have = {"CPU": float(os.cpu_count() or 1), "GPU": 0.0}
    try:
        from ray._private.accelerators import NvidiaGPUAcceleratorManager

        have["GPU"] = float(NvidiaGPUAcceleratorManager.get_current_node_num_accelerators() or 0)
    except Exception:  # Ray will tell after it starts
        have.pop("GPU")
    return have


def precheck_local(request: dict, source: str, where: str) -> None:
    """Refuse, before starting a local Ray, a per-trial request this machine can never meet."""
    have = local_resources()
    for key, amount in _needs(request).items():
        if key == "memory" or (key not in have and key in ("CPU", "GPU")):
            continue
        if amount > have.get(key, 0):
            what = ", ".join(f"{k}={v:g}" for k, v in have.items())
            raise SpecError(source, where, f"one trial needs {key}={amount:g} but this machine has {what}; "
                                           f"lower the request or join a cluster with --address")


def _fits(need: dict) -> tuple:
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not need:  # a trial that asks for nothing (cpu: 0): as many at once as the cluster has CPUs
        return max(1, int(sum(n.get("CPU", 0) for n in nodes))), nodes
    fits = 0
    for node in nodes:
        per_node = [math.floor(node.get(k, 0) / v + 1e-9) for k, v in need.items()]
        fits += min(per_node) if per_node else 0
    return fits, nodes


def check_feasible(request: dict, source: str, where: str, scale_wait: float = 0.0) -> int:
    """Refuse a per-trial request no alive node can meet; return how many trials fit at once.

    On a cluster (``scale_wait`` > 0) the autoscaler is first asked for a node that fits
    one trial, and given ``scale_wait`` seconds to bring it up (GPU workers often start at 0).
    """
    import time

    need = _needs(request)
    fits, nodes = _fits(need)
    if fits == 0 and scale_wait > 0:
        from ray.autoscaler.sdk import request_resources

        wanted = ", ".join(f"{k}={v:g}" for k, v in need.items())
        print(f"no node can run a trial that needs {wanted} yet; asking the autoscaler for one "
              f"(waiting up to {scale_wait:.0f}s)", flush=True)
        request_resources(bundles=[need])
        deadline = time.monotonic() + scale_wait
        while fits == 0 and time.monotonic() < deadline:
            time.sleep(5)
            fits, nodes = _fits(need)
        request_resources(bundles=[])  # the sweep's own tasks keep the autoscaler busy from here
    if fits == 0:
        largest = max(nodes, key=lambda n: n.get("CPU", 0), default={})
        have = ", ".join(f"{k}={largest.get(k, 0):g}" for k in need) if largest else "no nodes"
        wanted = ", ".join(f"{k}={v:g}" for k, v in need.items())
        raise SpecError(
            source, where,
            f"no node of the Ray cluster can run a trial that needs {wanted} (largest node: {have}); "
            f"lower the request or add nodes" + (" (the autoscaler added none in time)" if scale_wait else ""),
        )
    return fits


def task_outcome(future) -> tuple:
    """``(RunEnd, None)`` from a finished trial task's future, or ``(None, why it has none)``:
    the worker died, the task was cancelled, or its outcome cannot be read here."""
    from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

    from .. import protocol

    try:
        data = future.result()
    except TaskCancelledError:
        return None, "cancelled before it started"
    except WorkerCrashedError as e:
        return None, f"worker died: {_first_line(e)}"
    except RayTaskError as e:
        return None, f"worker error: {_first_line(e)}"
    except Exception as e:  # OOM kills, lost nodes, ...
        return None, f"worker died: {e.__class__.__name__}: {_first_line(e)}"
    try:
        return protocol.loads(data), None
    except Exception as e:
        return None, f"the sweep driver could not read the trial's outcome ({e.__class__.__name__}: {e})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__
