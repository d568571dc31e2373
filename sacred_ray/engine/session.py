"""The life both commands share: from a resolved spec to a joined Ray and back.

``Session`` settles the launch (observers, where the experiment is, what a trial needs)
when it is made; ``open`` opens the sweep folder (and on --resume reads what the earlier
sweep left), ``write_spec`` records the spec as run, ``start`` joins or starts Ray, takes
over Ctrl-C and SIGTERM, checks that a trial fits and starts the hub, and ``close`` undoes
all of it. ``ray_sweep``'s driver and ``tune_with``'s search run inside one, so a stop,
a resume or a new capability behaves the same for both.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

from sacred import Experiment

from ..records import read_spec_header, redact
from ..spec import SpecError
from ..spec.settings import default_mode
from ..storage import join
from .cluster import SCALE_WAIT_SECONDS, check_feasible, connect, disconnect
from .control import Beacon
from .folder import SweepFolder
from .hub import Hub, start_hub
from .mailbox import DriverMailbox
from .observers import close_stale_runs
from .prepare import Launch, prepare_launch, storage_root
from .reporting import ReportWriter

POLL_SECONDS = 0.25  # how long a driver's loop waits for trial events before it looks around


@dataclass
class Request:
    """How to run a sweep or a search, whichever command: what ``run_sweep`` and ``run_tune``
    take besides the spec, and what the command line's flags say."""

    options: Optional[dict] = None  # Sacred's flags by long name ({"--file_storage": "runs"})
    address: Optional[str] = None  # a Ray cluster to join (else sweep.address, RAY_ADDRESS, a local Ray)
    resume: bool = False  # continue the sweep of the same name
    changed_source_ok: bool = False  # resume even though the experiment's source changed since it ran
    skip_done: bool = False  # skip the trials an earlier COMPLETED run already ran (as sweep: skip_done: true)
    rerun: Optional[str] = None  # "failed": run again only the earlier sweep's FAILED, INTERRUPTED, TIMEOUT trials
    progress: bool = True  # show progress on stderr
    command: Optional[list] = None  # the command line, as spec.yaml records it (credentials hidden)
    sort: Optional[str] = None  # rank the end table by this metric
    report: Optional[Callable[..., str]] = None  # writes report.html (``api`` gives ``report.write_report``)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM reached the driver; ``code`` is the exit status to use (130, 143).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    """One sweep's or search's launch, folder, Ray and hub; see the module docstring.

    ``section`` is the spec's section for how-to-run settings (``sweep`` or ``tune``); it
    names the keys in error lines."""

    def __init__(self, ex: Experiment, spec, section: str, req: Request):
        """Settle the launch (nothing is written or started yet: ``open`` does that)."""
        self.spec = spec
        self.section = section
        self.settings = spec.settings
        self.req = req
        self.launch: Launch = prepare_launch(ex, spec.settings, dict(req.options or {}), req.address, spec.source,
                                             section)
        metric = req.sort or spec.settings.metric or "result"
        self.report = ReportWriter(req.report, self.launch.folder_path, metric,
                                   None if req.sort else spec.settings.mode,
                                   mongo=self.launch.observer_options.get("--mongo_db"))
        self.sources = self.launch.sources
        self.folder: Optional[SweepFolder] = None
        self.beacon: Optional[Beacon] = None  # status.json and control.jsonl (``open`` makes it)
        self.earlier: list = []  # an earlier sweep's ledger lines (--resume)
        self.hub: Optional[Hub] = None
        self.interrupted: Optional[Interrupted] = None
        self._graceful: Optional[Callable[[Interrupted], None]] = None
        self._previous: dict = {}

    # -- opening ----------------------------------------------------------------
    def open(self) -> None:
        """Open the sweep folder (one driver at a time), and on --resume read the earlier
        sweep's ledger and close the runs its driver left RUNNING."""
        req, name = self.req, self.settings.name
        if (req.resume or req.rerun) and not req.changed_source_ok:
            self._check_sources()
        try:
            self.folder = SweepFolder(self.launch.folder_path, resume=req.resume or bool(req.rerun))
        except OSError as e:
            raise self._unwritable(e) from None
        # the sweep's own id, kept by --resume: two sweeps of one name in one observer (a rerun
        # months later) are told apart by it (a sweep begun before ids were written has none)
        earlier = read_spec_header(self.folder.path) if (req.resume or req.rerun) and self.folder.existed else {}
        self.launch.sweep_id = earlier.get("id") if earlier else uuid.uuid4().hex[:12]
        if storage_root(self.settings) is not None:  # checkpoints under the storage: this sweep's own place
            self.launch.checkpoints = join(storage_root(self.settings, self.launch.sweep_id), "checkpoints")
        if self.folder.moved_aside:
            print(f"an earlier sweep in {_rel(self.folder.path)} was moved to {_rel(self.folder.moved_aside)} "
                  f"(use --resume to continue one)")
        if req.resume or req.rerun:
            self._resume()
        metric = req.sort or self.settings.metric or "result"
        mode = (None if req.sort else self.settings.mode) or default_mode(metric)
        self.beacon = Beacon(self.folder.path, name, "ray_sweep" if self.section == "sweep" else "tune_with",
                             metric, mode, total=None, earlier=self.earlier)

    def _check_sources(self) -> None:
        """Refuse --resume, before anything runs, when a source file of the experiment differs
        from what the sweep's runs ran (spec.yaml keeps their md5s; an older sweep's has none)."""
        earlier = read_spec_header(self.launch.folder_path).get("sources")
        if not isinstance(earlier, dict):
            return
        changed = sorted(f for f in set(earlier) | set(self.sources) if earlier.get(f) != self.sources.get(f))
        if changed:
            raise SpecError("--resume", self.settings.name,
                            f"the experiment's source changed since the sweep's runs ran ({', '.join(changed)}); its "
                            f"COMPLETED trials ran the old code: give --changed-source-ok to go on anyway, or start "
                            f"a new sweep without --resume")

    def _resume(self) -> None:
        name = self.settings.name
        self.earlier = self.folder.read_ledger(say_torn=True)
        recovered = self._completed_after_the_ledger()
        if recovered:
            print(f"resume: {len(recovered)} run(s) the workers recorded COMPLETED after the ledger's last line "
                  f"(the driver stopped first) count as done")
        if not self.folder.existed:
            print(f"resume: there is no earlier sweep {name!r} in {_rel(self.folder.path)}; "
                  f"starting it from the beginning")
        stale = close_stale_runs(self.launch.prototypes, name, "the sweep's driver stopped while this run was RUNNING")
        if stale:
            print(f"resume: marked {stale} run(s) left RUNNING by an earlier driver as INTERRUPTED")

    def _completed_after_the_ledger(self) -> list:
        """Runs a worker recorded COMPLETED in file storage itself whose ledger line the driver
        never wrote (it was killed in between): their lines are written now, from the records,
        so --resume does not run a finished trial again."""
        import time

        from ..records import file_runs, read_json
        from .observers import worker_can_record

        known = {str(e.get("run_id")) for e in self.earlier}
        out = []
        for proto in (p for p in self.launch.prototypes if worker_can_record(p)):
            for run in file_runs(proto.basedir, self.settings.name, self.launch.sweep_id):
                sweep, tune = run.get("meta", {}).get("sweep") or {}, run.get("meta", {}).get("tune") or {}
                if run.get("status") != "COMPLETED" or str(run["_id"]) in known or sweep.get("key") is None:
                    continue
                series = read_json(os.path.join(run["_folder"], "metrics.json"))
                entry = {"key": sweep["key"], "index": None if tune else sweep.get("trial"),
                         "trial_id": tune.get("trial_id"), "variant": sweep.get("variant"),
                         "attempt": sweep.get("attempt") or 1, "status": "COMPLETED", "run_id": str(run["_id"]),
                         "result": run.get("result"),
                         "metrics": {k: v["values"][-1] for k, v in series.items() if v.get("values")},
                         "steps": {k: len(v["values"]) for k, v in series.items() if v.get("values")},
                         "duration": None, "node": ((run.get("info") or {}).get("ray") or {}).get("node_ip"),
                         "error": None, "retrying": False, "config": run.get("config"), "time": time.time()}
                known.add(str(run["_id"]))
                self.folder.record(entry)
                self.earlier.append(entry)
                out.append(entry)
        return out

    def write_spec(self, trials: list) -> None:
        """Write the spec as run, and the trials it expands to, into the opened folder."""
        try:
            self.folder.write_spec(self.req.command or [], self.spec.path, self.spec.raw, trials,
                                   recorded_by(self.launch), self.settings.name, sources=self.sources,
                                   sweep_id=self.launch.sweep_id)
        except OSError as e:
            self.folder.abandon()
            raise self._unwritable(e) from None

    def _unwritable(self, e: OSError) -> SpecError:
        """The sweep folder's first files could not be written (a full disk): one line, and
        nothing started."""
        where = f"{self.section}: {'dir' if self.settings.dir else 'name'}"
        what = os.path.basename(e.filename) if e.filename else "its first files"
        return SpecError(self.spec.source, where, f"cannot write {what} in {self.launch.folder_path} ({e.strerror or e}); "
                                                  f"free space there or give {self.section}.dir another place")

    # -- starting ---------------------------------------------------------------
    def start(self, runtime_env: Optional[dict] = None, graceful: Optional[Callable[[Interrupted], None]] = None) -> int:
        """Join or start Ray, take over the stop signals, check a trial fits, start the hub;
        return how many trials fit at once.

        Without ``graceful`` SIGTERM raises ``Interrupted`` (143) and Ctrl-C raises
        KeyboardInterrupt where the driver is. With it, the first Ctrl-C or SIGTERM is kept
        in ``interrupted`` and handed to ``graceful`` (which asks the trials to stop), and a
        second one raises at once."""
        self._graceful = graceful
        self._take_signals()  # before Ray starts: a Ctrl-C while it starts is ours too
        if self.launch.started_ray:
            if self.req.progress:
                print(_which_ray(self.launch), file=sys.stderr, flush=True)
            connect(self.launch.address, self.launch.runtime_env if runtime_env is None else runtime_env)
            self._take_signals()  # ray.init puts its own SIGTERM handler in place
        capacity = check_feasible(self.launch.request, self.spec.source, f"{self.section}: resources",
                                  scale_wait=0 if self.launch.local else SCALE_WAIT_SECONDS)
        self.hub = start_hub()
        self.report.start()
        self.beacon.mailbox, why_not = DriverMailbox.open(self.settings.name)
        if why_not:
            print(f"warning: {why_not}", file=sys.stderr)
        self.beacon.write(force=True)
        return capacity

    def _take_signals(self) -> None:
        def on_signal(signum, frame):
            stop = Interrupted(143, "SIGTERM") if signum == signal.SIGTERM else Interrupted(130, "Ctrl-C")
            if self._graceful is None:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                raise stop
            if self.interrupted is not None:  # the second one: stop at once
                raise KeyboardInterrupt
            self.interrupted = stop
            self._graceful(stop)

        try:
            for signum in (signal.SIGTERM,) + ((signal.SIGINT,) if self._graceful else ()):
                self._previous.setdefault(signum, signal.getsignal(signum))
                signal.signal(signum, on_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass

    # -- ending -----------------------------------------------------------------
    def stop_from_elsewhere(self, stop: Interrupted) -> bool:
        """A stop asked for from outside the terminal (``sweep_cancel``), on any thread: what
        the first Ctrl-C does. False when the driver cannot stop that way now."""
        if self.interrupted is not None:
            return True
        if self._graceful is None:
            return False
        self.interrupted = stop
        try:
            self._graceful(stop)
        except Interrupted:  # the search is not running yet
            return False
        return True

    def close(self, how: Optional[str] = None) -> None:
        """Stop the hub, close the folder, give the signals back and leave a Ray started here;
        ``how`` the sweep ended, as status.json says it."""
        import ray

        self.report.finish()  # the last write runs while Ray shuts down
        if self.beacon is not None:
            stop = self.interrupted
            self.beacon.close(how or (f"interrupted ({stop.reason})" if stop else "finished"))
        if self.folder is not None:
            self.folder.close()
        if self.hub is not None:
            self.hub.close()
        for signum, handler in self._previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, TypeError):
                pass
        if self.launch.started_ray and ray.is_initialized():
            disconnect()

    def closing_notes(self) -> str:
        """The lines after the end table: where the report is, and runs MongoDB could not take."""
        lines = [self.report.line()] if self.report.write is not None else []
        if self.folder.write_error:
            lines.append(f"the sweep stopped: {self.folder.write_error}; runs that ended are in your observers "
                         f"(and in this table), the ledger lacks them: free space, then --resume reruns them")
        saved = os.path.join(self.folder.path, "failed_saves")
        if os.path.isdir(saved) and os.listdir(saved):
            lines.append(f"{len(os.listdir(saved))} run(s) could not be written to MongoDB; Sacred saved them in "
                         f"{saved} (load them with sacred's MongoObserver once the server is back)")
        return "".join(f"\n{line}" for line in lines)


def recorded_by(launch: Launch) -> dict:
    """Where the sweep's runs are recorded: file storage folders, and MongoDB without credentials."""
    from sacred.observers import FileStorageObserver

    out: dict = {}
    folders = [os.path.abspath(p.basedir) for p in launch.prototypes if isinstance(p, FileStorageObserver)]
    if folders:
        out["file_storage"] = folders
    if launch.observer_options.get("--mongo_db"):
        out["mongo_db"] = redact(launch.observer_options["--mongo_db"])
    return out


def _which_ray(launch: Launch) -> str:
    """What the wait while Ray starts is for (a local start takes seconds)."""
    address = launch.address or os.environ.get("RAY_ADDRESS")
    if launch.local and address in (None, "", "local"):
        return f"starting a local Ray ({os.cpu_count() or 1} CPUs) ..."
    return f"joining the Ray cluster at {redact(address or 'auto')} ..."


def _rel(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
