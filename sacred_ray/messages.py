"""The messages between a trial's worker and the sweep's driver: their kinds, named once,
and the typed body of each (``protocol`` says how they are encoded and sent).

Every message is ``(token, kind, body)``; a run's life is ``BEGUN`` (ray_sweep) or ``OPEN``
(tune_with), ``START`` or ``STARTED``, heartbeats and files, and its ``RunEnd``, whichever
command runs it and however that end travels (a ray_sweep task returns it, a Tune trial
sends it as ``END``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

# -- message kinds -----------------------------------------------------------------
# Each kind's body is the dataclass named beside it (see "bodies" below).
BEGUN = "begun"          # worker -> driver, ``worker`` dict, answered by the hub GO or HOLD: a worker took the trial (its timeout counts from here)
OPEN = "open"            # worker -> driver, ``RunOpen``, answered ``Opened``: which run a Tune trial's start is
START = "start"          # worker -> driver, ``RunStart``, answered ``StartAnswer``: start the run in the driver's observers
STARTED = "started"      # worker -> driver, ``RunStart``: the worker's own observers started the run
HEARTBEAT = "heartbeat"  # ``Heartbeat``: info, captured output, metrics since the last one
ARTIFACT = "artifact"    # ``FileEvent``
RESOURCE = "resource"    # ``FileEvent``
END = "end"              # ``RunEnd``: a Tune trial's end (a ray_sweep task returns its RunEnd instead)
SYNC = "sync"            # answered by the hub once everything sent before it is queued
UNREADABLE = "unreadable"  # hub -> driver: a body that did not unpickle ({"kind", "error"})
RETURNED = "returned"    # hub -> driver: a Ray task ended (its future as the body)

GO, HOLD = "go", "hold"  # the hub's answers to BEGUN: run the trial, or (a paused sweep) return without running it

# -- what a worker is given and gives back -------------------------------------------
@dataclass(frozen=True)
class ExperimentRef:
    """Where a worker finds the experiment: a module file (or a module name, for an
    experiment started with ``python -m``), the variable that holds it, and the name of
    its module in the driver (where the driver finds the classes it defines)."""

    attribute: str
    path: Optional[str] = None
    relative_path: Optional[str] = None
    module: Optional[str] = None
    root: Optional[str] = None  # the folder ``module`` is imported from, when it is on this machine
    driver_module: Optional[str] = None

    def locate(self) -> str:
        """The module file to import here: the shipped copy in the working dir when present."""
        if self.relative_path and os.path.isfile(self.relative_path):
            return os.path.abspath(self.relative_path)
        if self.path and os.path.isfile(self.path):
            return self.path
        raise FileNotFoundError(
            f"experiment module {self.relative_path or self.path!r} is not on this worker "
            f"(cwd {os.getcwd()}); ship it with sweep.runtime_env.working_dir"
        )


@dataclass
class RunJob:
    """One Sacred run for a worker: what ``ex.run`` takes, and where to run it."""

    token: str  # names the run's messages to the driver; opaque to the worker
    config_updates: dict = field(default_factory=dict)
    named_configs: tuple = ()
    options: dict = field(default_factory=dict)  # Sacred's flags, observer flags removed
    meta_info: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    cwd: Optional[str] = None  # the driver's folder, when the worker shares its machine
    checkpoints: Optional[dict] = None  # {"folder", "keep"}: where sacred_ray.save keeps the trial's state


@dataclass
class WorkerRecording:
    """Observers a worker on the driver's machine records with itself (file storage)."""

    driver_node: str
    observers: list
    meta_options: dict  # the observer flags as the run's meta.options shows them
    driver_priority: Optional[float] = None  # where the driver's own observers stand, if it has any


@dataclass
class SearchJob:
    """What every trial of a ``tune_with`` search is given (through ``tune.with_parameters``)."""

    ref: ExperimentRef
    hub: dict  # the driver hub's address and key
    plan: Any  # the space file laid out for Tune (spec.space.SearchPlan)
    options: dict  # Sacred's flags, observer flags removed
    metric: str  # the metric Tune optimises: each log_scalar of it is one Tune result
    scheduler: str
    max_t: Optional[int]  # the scheduler's budget of iterations per trial, if it has one
    name: str  # the search's name (meta.sweep.name)
    cwd: Optional[str] = None
    completed: dict = field(default_factory=dict)  # --resume: trial id -> last result of a COMPLETED run
    checkpoints: Optional[str] = None  # the search's checkpoint folder: each trial keeps its state in <trial id>/
    recording: Optional[WorkerRecording] = None  # what a trial on the driver's machine records itself


@dataclass
class RunOpen:
    """A Tune trial's run is about to start (``OPEN``): the driver answers whether it continues
    the trial's earlier run (Tune started the trial again) or is a new one."""

    worker: dict  # {node_id, node_ip, pid}
    trial_id: str
    variant: Optional[str] = None
    parent: Optional[dict] = None  # a PBT exploit: the donor's run, trial and step, and the keys it changed
    updates: dict = field(default_factory=dict)  # what the trial runs (dotted keys): --skip-done compares it
    named_configs: tuple = ()


@dataclass
class Opened:
    """The driver's answer to ``OPEN``: ``continues`` when the run goes on an earlier one, which
    the driver then records itself (the worker's own observers stay out of it)."""

    continues: bool = False
    meta: dict = field(default_factory=dict)  # the run's meta.sweep, as the driver writes it for both commands
    wait: Optional[float] = None  # the sweep is paused: ask again after this many seconds (the run has not started)
    done: Optional[dict] = None  # --skip-done: an earlier run holds the trial; Tune gets {"metrics", "step"}, no run starts


@dataclass
class RunStart:
    """A run's start, as Sacred gave it to the worker's relay observer (``START`` / ``STARTED``)."""

    start_time: Any
    config: dict
    worker: dict  # {node_id, node_ip, pid}: the driver signals the trial there
    run_id: Any = None  # the id the run already has (``STARTED``: what the worker's observers assigned)
    worker_records: bool = False  # the worker's own observers record the run too (file storage)
    ex_info: Optional[dict] = None  # the rest only with ``START``, for the driver's observers
    command: Optional[str] = None
    host_info: Optional[dict] = None
    meta_info: dict = field(default_factory=dict)


@dataclass
class StartAnswer:
    """The driver's answer to ``START``: the run's id, or why it cannot start; ``continues``
    (metric -> the last step its observers hold) when the run goes on an earlier one."""

    run_id: Any = None
    error: Optional[str] = None
    continues: Optional[dict] = None


@dataclass
class Heartbeat:
    """What Sacred's heartbeat gives the observers, plus the metrics logged since the last one."""

    info: dict
    beat_time: Any
    result: Any = None
    metrics: dict = field(default_factory=dict)  # name -> {"steps", "values", "timestamps"}; when the
    # worker's own observers record the series and the driver none of it, only the last of each, and "count"
    out: str = ""  # captured output since the last heartbeat (all of it when ``out_replaces``)
    out_replaces: bool = False


@dataclass
class FileEvent:
    """An artifact or a resource, with its content (None when the worker could not read it)."""

    filename: str
    content: Optional[bytes]
    name: Optional[str] = None  # artifacts: the name it is stored under
    metadata: Any = None
    content_type: Optional[str] = None


@dataclass
class Final:
    """A run's final event: ``completed``, ``interrupted`` or ``failed``, at ``time``."""

    kind: str
    time: Any
    status: Optional[str] = None  # interrupted: INTERRUPTED, TIMEOUT, ... (Sacred's status names)
    result: Any = None
    fail_trace: Optional[list] = None

    def sacred_event(self) -> tuple:
        """``(method, kwargs)``: the observer call Sacred makes for this end."""
        if self.kind == "completed":
            return "completed_event", {"stop_time": self.time, "result": self.result}
        if self.kind == "failed":
            return "failed_event", {"fail_time": self.time, "fail_trace": self.fail_trace or []}
        return "interrupted_event", {"interrupt_time": self.time, "status": self.status or "INTERRUPTED"}


@dataclass
class RunEnd:
    """How a worker's run ended, the same for both commands however it travels (a ray_sweep
    task's return value, a Tune trial's ``END`` message): the outcome as the worker saw it, the
    run's final event, and what the driver still needs to record it."""

    status: str = "FAILED"  # COMPLETED, INTERRUPTED or FAILED; SKIPPED: no run (``result`` is Opened.done)
    result: Any = None
    error: Optional[str] = None
    node: dict = field(default_factory=dict)
    run_id: Any = None
    final: Optional[Final] = None
    heartbeat: Optional[Heartbeat] = None  # the last heartbeat, if it was held back (a short run's)
    posted: int = 0  # events the worker sent before this end: the driver records them first
    held: bool = False  # the sweep was paused when the worker took the trial: no run started, the trial waits
