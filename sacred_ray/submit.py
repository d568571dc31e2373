"""``--submit``: the same command, started as a Ray Job on the cluster's head node, so the
sweep outlives the terminal (and the laptop) that gave it.

    python my_exp.py ray_sweep with grid.yaml -m mongo:27017:sweeps --submit --address http://HEAD:8265

The experiment's folder is the job's working_dir (shipped as the sweep would ship it), the
job's entrypoint is the command itself without ``--submit`` and ``--address``, and its driver
joins the cluster it runs on. The command prints the job's id, how to follow its output
(``ray job logs --follow``) and how to see and steer the sweep from here (``sweep_status NAME
--address ...``, through the sweep's actor on the cluster: ``engine.mailbox``).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time

from sacred import Experiment

from .engine.cluster import runtime_env_for
from .engine.prepare import experiment_ref
from .records import redact
from .spec import SpecError

AGENT_WAIT_SECONDS = 60.0  # how long a head that just started gets to have its job agent up
DROPPED = ("--submit",)
DROPPED_WITH_VALUE = ("--address",)


def job_address(given) -> str:
    address = given or os.environ.get("RAY_ADDRESS")
    if not address or address == "local":
        raise SpecError("command line", "--submit", "needs the cluster's job server: --address http://HEAD:8265 "
                                                    "(or RAY_ADDRESS)")
    return address


def entrypoint(ex: Experiment, argv: list, spec_path: str, experiment_dir: str) -> str:
    """The command line the job runs, in the shipped folder: ``python <main file> ...``."""
    main = os.path.relpath(ex.mainfile.filename, experiment_dir)
    spec = os.path.relpath(spec_path, experiment_dir)
    if spec.startswith(".."):
        raise SpecError(spec_path, "", f"is outside the experiment's folder {experiment_dir}, which is what the "
                                       f"job is shipped; put the sweep file there")
    args, skip = [], False
    for token in argv[1:]:
        if skip:
            skip = False
            continue
        flag = token.split("=", 1)[0]
        if flag in DROPPED:
            continue
        if flag in DROPPED_WITH_VALUE:
            skip = "=" not in token
            continue
        args.append(spec if os.path.abspath(token) == spec_path else token)
    return shlex.join(["python", main] + args)


def submit(ex: Experiment, req, spec) -> int:
    """Submit the command as a Ray Job; print how to follow it; the exit status."""
    address = job_address(req.address)
    ref, experiment_dir = experiment_ref(ex, shipped=True)
    if ref.module:
        raise SpecError("command line", "--submit", "is for an experiment started as a script (python exp.py); "
                                                    "run python -m ... through ray job submit yourself")
    settings = spec.settings
    storage = req.options.get("--file_storage")
    warnings = []
    if storage and not os.path.isabs(storage):
        warnings.append(f"-F {storage} is relative: the runs go to the job's copy of this folder on the head node; "
                        f"give a folder the head can keep (an absolute path) or -m")
    if not settings.dir or not os.path.isabs(settings.dir):
        warnings.append("the sweep folder goes to the job's copy of this folder on the head node (set sweep: dir: to "
                        "an absolute path there to keep it); see and steer it with --address as below")
    command = entrypoint(ex, sys.argv, req.spec_path, experiment_dir)
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise SpecError("command line", "--submit", 'needs Ray\'s job client: pip install "ray[default]"') from None
    outputs = [os.path.abspath(p) for p in (storage, settings.dir or "sweeps") if p]  # results stay home
    excludes = ["/" + os.path.relpath(p, experiment_dir) for p in outputs if p.startswith(experiment_dir + os.sep)]
    runtime_env = runtime_env_for(experiment_dir, settings.runtime_env, excludes)
    # Ray's job client lets RAY_ADDRESS override the address it is given: an --address wins here
    hidden = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if req.address and k in os.environ}
    try:
        client = JobSubmissionClient(address)
    except Exception as e:
        raise SpecError("command line", "--address", f"cannot reach the job server at {redact(address)}: "
                                                     f"{_first_line(e)}") from None
    finally:
        os.environ.update(hidden)
    name = re.sub(r"[^A-Za-z0-9_-]", "-", settings.name)
    submission_id = f"sacred-ray-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    deadline = time.monotonic() + AGENT_WAIT_SECONDS
    while True:
        try:
            job_id = client.submit_job(entrypoint=command, runtime_env=runtime_env, submission_id=submission_id,
                                       metadata={"sacred_ray_sweep": settings.name, "command": req.command})
            break
        except Exception as e:
            # a head that just started has no job agent yet: Ray says to try again later
            if "try again later" in str(e) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise SpecError("command line", "--submit", f"the job server at {redact(address)} refused the job: "
                                                        f"{_first_line(e)}") from None
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    shown = redact(address)
    print(f"submitted {settings.name!r} as Ray job {job_id} on {shown}: {command}")
    print(f"  follow it:  ray job logs --address {shown} --follow {job_id}")
    print(f"  see it:     python {os.path.basename(ex.mainfile.filename)} sweep_status {settings.name} "
          f"--address CLUSTER   (the head's host:6379, or ray://HEAD:10001)")
    print(f"  stop it:    python {os.path.basename(ex.mainfile.filename)} sweep_cancel {settings.name} "
          f"--address CLUSTER   (or ray job stop --address {shown} {job_id})")
    return 0


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else e.__class__.__name__


__all__ = ["entrypoint", "submit"]
