"""What both commands settle before Ray starts: where the experiment is, what a trial needs,
which observers record, where the sweep's files go, and what to ship."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Optional

from sacred import Experiment

from ..messages import ExperimentRef
from ..protocol import FOLLOW_LOGGING
from ..records import redact, scrub
from ..spec import SpecError
from ..spec.resources import declared_resources
from ..storage import check_storage, join
from .cluster import precheck_local, ray_request, runtime_env_for, starts_local_ray
from .folder import check_folder, check_writable
from .observers import build_prototypes, check_observer_flags, check_reachable, resolve_file_storage, split_options

ADDRESS_SECONDS = 10.0  # how long a cluster's head gets to answer before the command gives up


@dataclass
class Launch:
    """Everything checked and resolved for one sweep or search; nothing started yet."""

    started_ray: bool  # whether this call starts (or joins) Ray, rather than using the caller's
    address: Optional[str]
    local: bool  # a Ray on this machine: nothing shipped, workers run in this folder
    ref: ExperimentRef
    experiment_dir: str  # the folder of the experiment's main file (what a cluster gets shipped)
    base_dir: str  # Sacred's ex.base_dir: its sources are relative to it
    folder_path: str
    request: dict
    prototypes: list
    observer_options: dict
    worker_options: dict
    runtime_env: dict
    checkpoints: str = ""  # where each trial keeps its checkpoints (<trial key>/ in it): a path or a URI
    sources: dict = field(default_factory=dict)  # the md5 of each source file of the experiment, as Sacred takes them
    sweep_id: Optional[str] = None  # this sweep's own id (``Session.open`` settles it): meta.sweep.id of its runs

    @property
    def cwd(self) -> Optional[str]:
        return os.getcwd() if self.local else None


def experiment_ref(ex: Experiment, shipped: bool = True) -> tuple:
    """How workers find ``ex`` and what a cluster is shipped: ``(ExperimentRef, folder)``.

    An experiment started as a script is imported by its file; one started with
    ``python -m pkg.exp`` (or imported from a package) by its module name, so its relative
    imports work, with the folder its package is imported from as what is shipped."""
    if ex.mainfile is None:
        raise SpecError("experiment", ex.path, "was defined interactively; define it in a .py file to sweep it")
    path = ex.mainfile.filename
    found = None
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and os.path.abspath(module.__file__) == path:
            attribute = next((name for name, value in vars(module).items() if value is ex), None)
            if attribute:
                found = module, attribute
                break
    if found is None:
        raise SpecError("experiment", ex.path, f"is not a module-level variable of {path}; define it as ex = Experiment(...)")
    module, attribute = found
    name = module.__name__
    if name == "__main__":
        spec = getattr(module, "__spec__", None)
        name = spec.name if spec is not None and spec.name else None  # set by python -m
    if name and "." in name:  # in a package: import it by name, from the package's root folder
        root = path
        for _ in range(name.count(".") + (os.path.basename(path) == "__init__.py") + 1):
            root = os.path.dirname(root)
        ref = ExperimentRef(attribute=attribute, path=path, module=name, root=root, driver_module=module.__name__)
        return ref, root
    relative = os.path.basename(path) if shipped else None
    ref = ExperimentRef(attribute=attribute, path=path, relative_path=relative, driver_module=module.__name__)
    return ref, os.path.dirname(path)


def check_address(address: Optional[str], in_spec: Optional[str], source: str, section: str) -> None:
    """Refuse, in one line and before anything is created, a Ray address this command cannot
    use: a Ray Client (ray://) address (it runs this driver off the cluster, where its
    workers cannot reach it), one that is not host:port, or one where nothing listens (Ray
    itself would retry for minutes)."""
    given = address or os.environ.get("RAY_ADDRESS") or ""
    if not given or given in ("local", "auto"):
        return
    if address and address == in_spec:
        where = f"{section}: address"
    elif address:
        source, where = "command line", "--address"
    else:
        source, where = "environment", "RAY_ADDRESS"
    if given.startswith("ray://"):
        raise SpecError(source, where, f"{redact(given)!r} is a Ray Client address, but a sweep's workers must reach "
                                       f"its driver; run the command on the cluster (ray job submit, see aws/README.md)")
    host, colon, port = given.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(source, where, f"{redact(given)!r} is not a Ray address; use host:port of the head node "
                                       f"(6379 by default), auto, or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_SECONDS).close()
    except OSError as e:
        why = e.strerror or e.__class__.__name__
        raise SpecError(source, where, f"cannot reach a Ray cluster at {redact(given)} ({why}); start it "
                                       f"(ray start --head) or fix the address") from None


def prepare_launch(ex: Experiment, settings, options: dict, address: Optional[str], source: str,
                   section: str) -> Launch:
    """Check and resolve a launch; raises SpecError (nothing started) on anything wrong."""
    import ray

    check_observer_flags(options)
    resolve_file_storage(options)
    if options.get("--file_storage"):
        check_writable(options["--file_storage"], "command line", "-F", "give -F a folder the runs can be written to")
    started_ray = not ray.is_initialized()
    address = address or settings.address
    # A Ray started here runs on this machine: workers import the experiment where it is
    # and run in this folder, as the experiment would alone. A cluster gets it shipped.
    local = not started_ray or starts_local_ray(address)
    ref, experiment_dir = experiment_ref(ex, shipped=not local)
    folder_path = os.path.abspath(settings.dir or os.path.join("sweeps", settings.name))
    check_folder(folder_path, source, f"{section}: {'dir' if settings.dir else 'name'}")
    checkpoints = checkpoint_location(settings, folder_path, source, section)
    request = ray_request(settings.resources.merged_over(declared_resources(ex)))
    if started_ray and local:
        precheck_local(request, source, f"{section}: resources")
    observer_options, worker_options = split_options(options)
    if not worker_options.get("--capture"):
        # Sacred's default, fd, would start a tee process per run (about 2 ms) and, in a worker
        # whose stdout is a file, read a short run's output before tee has written it: capture
        # in Python instead, with logging handlers following (as fd capture takes their lines)
        worker_options["--capture"] = "sys"
        worker_options[FOLLOW_LOGGING] = True
    if not worker_options.get("--comment"):
        worker_options["--comment"] = f"sweep {settings.name}"
    prototypes = build_prototypes(ex, observer_options, failure_dir=os.path.join(folder_path, "failed_saves"))
    check_reachable(prototypes)
    if started_ray:
        check_address(address, settings.address, source, section)
    if local:
        runtime_env = dict(settings.runtime_env)
    elif in_ray_job():
        runtime_env = {}  # the Ray Job this driver runs in ships the folder (and the user's runtime_env) already
    else:
        inside = [p for p in (folder_path, options.get("--file_storage"))
                  if p and os.path.abspath(p).startswith(experiment_dir + os.sep)]
        excludes = ["/" + os.path.relpath(p, experiment_dir) for p in inside]  # results stay home
        runtime_env = runtime_env_for(experiment_dir, settings.runtime_env, excludes)
    sources = {name: md5 for name, md5 in ex.get_experiment_info()["sources"]}
    return Launch(started_ray, address, local, ref, experiment_dir, ex.base_dir, folder_path, request, prototypes,
                  observer_options, worker_options, runtime_env, checkpoints, sources)


def in_ray_job() -> bool:
    """Whether this driver is a Ray Job's entrypoint whose runtime_env ships a working_dir
    (``--submit``, ``ray job submit --working-dir``): its tasks get that folder, and Ray refuses
    a second working_dir from ``ray.init``."""
    import json

    try:
        config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    except ValueError:
        return False
    return bool(isinstance(config, dict) and (config.get("runtime_env") or {}).get("working_dir"))


def storage_root(settings, sweep_id: Optional[str] = None) -> Optional[str]:
    """``<storage>/<name>/<sweep id>``: the sweep's place under ``sweep.storage`` / ``tune.storage``
    (None: not set). Each sweep has its own, so a new sweep of a name never finds, and restores,
    an earlier one's checkpoints or Tune state there, as it never finds them in its sweep folder
    (which moves aside); ``--resume`` keeps the id. A sweep begun before ids: ``<storage>/<name>``."""
    if not settings.storage:
        return None
    storage = settings.storage if "://" in settings.storage else os.path.abspath(settings.storage)
    return join(storage, settings.name, sweep_id) if sweep_id else join(storage, settings.name)


def checkpoint_location(settings, folder_path: str, source: str, section: str) -> str:
    """Where the trials keep their checkpoints: the sweep folder's checkpoints/, or under the storage
    setting, which must take a probe file (written, read, removed) before anything starts."""
    root = storage_root(settings)
    if root is None:
        return os.path.join(folder_path, "checkpoints")
    location = join(root, "checkpoints")  # of a sweep begun before ids; Session.open gives the sweep its own
    why = check_storage(root)
    if why is not None:
        raise SpecError(source, f"{section}: storage",
                        f"cannot write checkpoints to {redact(settings.storage)}: {scrub(why, settings.storage)}; "
                        "give a folder every node can reach, or a bucket these credentials can write")
    return location
