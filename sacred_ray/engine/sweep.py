"""ray_sweep: a grid's trials run on Ray, each an ordinary Sacred run (``SweepDriver``), and
what is ray_sweep's own around it: which trials ``--resume`` still runs, numbered as
the earlier sweep numbered them, and the end table."""

from __future__ import annotations

import dataclasses
import json

from sacred import Experiment

from ..spec import SpecError
from .control import NotHeard, read_status, request, send
from .folder import FolderInUse
from .progress import Progress
from .results import SweepResult, TrialResult, from_ledger, summarize
from .session import Interrupted, Request, Session
from .sweep_driver import SweepDriver


def sweep(ex: Experiment, grid, req: Request) -> SweepResult:
    """Run every trial of a resolved grid on Ray (see ``sacred_ray.run_sweep``)."""
    settings = grid.settings
    session = Session(ex, grid, "sweep", req)
    try:
        session.open()
    except FolderInUse as busy:
        return hand_over(session, grid, busy)
    trials = keep_numbers(grid.trials, session.folder.read_numbers()) if req.resume else list(grid.trials)
    numbered = trials
    session.write_spec(trials)
    results = []
    if req.resume:
        trials, results = _resumed(trials, session.earlier)
        if not trials:
            print(f"resume: all {len(grid.trials)} trials of {settings.name!r} are already COMPLETED; nothing to run")
            session.close()
            return SweepResult(settings.name, session.folder.path, results,
                               report=f"nothing to run: all {len(grid.trials)} trials are COMPLETED "
                                      f"(results in {session.folder.file('summary.csv')})" + session.closing_notes())
        print(f"resume: {len(results)} trials already COMPLETED, {len(trials)} to run")

    bar = Progress(len(trials), settings.name, enabled=req.progress)
    driver = None
    interrupted = None
    try:
        try:
            capacity = session.start()
            # Up to 3 trials per slot wait at Ray's end, so a worker that finishes gets its
            # next trial at once instead of after the driver's next turn (2 ms a trial).
            window = settings.max_concurrent or 4 * capacity
            bar.start()
            driver = SweepDriver(session, trials, window, bar, known={t.key: t.index for t in numbered})
            driver.run()
        except KeyboardInterrupt:
            interrupted = Interrupted(130, "Ctrl-C")
        except Interrupted as e:
            interrupted = e
        if interrupted is not None and driver is not None:
            bar.close()
            driver.relay.dispatch(driver.hub.get(0))  # starts that arrived with the Ctrl-C count
            print(f"\n{interrupted.reason}: stopping {driver.running()} running trial(s) "
                  f"(press Ctrl-C again to stop at once)", flush=True)
            try:
                driver.interrupt_all(f"sweep interrupted ({interrupted.reason})")
            except (KeyboardInterrupt, Interrupted):
                driver.interrupt_all(f"sweep interrupted ({interrupted.reason})", second=True)
    finally:
        bar.close()
        session.close(f"interrupted ({interrupted.reason})" if interrupted else None)
    if driver is not None:
        results += list(driver.results.values())
    done = {r.trial.index for r in results}
    for t in trials:
        if t.index not in done:
            results.append(TrialResult(trial=t, status="INTERRUPTED", error="not run"))
    out = SweepResult(settings.name, session.folder.path, sorted(results, key=lambda r: r.trial.index),
                      interrupted=interrupted.reason if interrupted else None,
                      observer_errors=driver.observer_errors if driver else [])
    out.exit_code = interrupted.code if interrupted else (0 if out.ok else 1)
    out.report = summarize(out, req.sort or settings.metric, settings.mode, session.folder) + session.closing_notes()
    return out


def hand_over(session: Session, grid, busy: FolderInUse) -> SweepResult:
    """The same command given while its sweep runs (a widened grid): the running driver takes
    the trials it lacks, numbered after its own; nothing runs twice. Any other sweep in the
    way is refused as before (``busy``)."""
    folder, name = session.launch.folder_path, grid.settings.name
    status = read_status(folder)
    if status is None or status.get("command") != "ray_sweep" or status.get("state") == "ended":
        raise busy
    trials = [{"key": t.key, "variant": t.variant, "updates": t.updates, "named": t.named, "seed": t.seed}
              for t in grid.trials]
    try:
        json.dumps(trials, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(grid.source, "grid", "holds values a control request cannot carry (JSON); the running "
                                             "sweep cannot take them: wait for it to end, then --resume") from None
    try:
        outcome = send(folder, request("add", trials=trials, spec_file=grid.path))
    except PermissionError:
        raise SpecError("sweep folder", folder, "is another user's running sweep; only its owner may add "
                                                "trials to it") from None
    except NotHeard as e:
        raise SpecError("sweep folder", folder, f"{e}; it takes the trials when it next looks (sweep_status "
                                                f"says whether it is alive)") from None
    pid = (status.get("driver") or {}).get("pid")
    return SweepResult(name, folder, [], report=f"the sweep {name!r} is running (pid {pid}): {outcome}")


def _resumed(trials: list, earlier: list) -> tuple:
    """(trials still to run, results of those the ledger has COMPLETED) for --resume."""
    previous = {entry.get("key"): entry for entry in earlier}
    done = [t for t in trials if previous.get(t.key, {}).get("status") == "COMPLETED"]
    results = [from_ledger(t, previous[t.key]) for t in done]
    return [t for t in trials if t not in done], results


def keep_numbers(trials: list, earlier: dict) -> list:
    """A resumed sweep's trials, each numbered as the earlier run of the sweep numbered it; a
    trial the grid gained since gets the next number after them (so trials.jsonl, the ledger
    and every run's meta.sweep.trial agree however the grid was edited)."""
    if not earlier:
        return list(trials)
    taken = set(earlier.values())
    following = max(taken) + 1
    out = []
    for t in trials:
        if t.key in earlier:
            out.append(dataclasses.replace(t, index=earlier[t.key]))
        else:
            out.append(dataclasses.replace(t, index=following))
            following += 1
    return sorted(out, key=lambda t: t.index)


__all__ = ["keep_numbers", "sweep"]
