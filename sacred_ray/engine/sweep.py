"""ray_sweep: a grid's trials run on Ray, each an ordinary Sacred run (``SweepDriver``), and
what is ray_sweep's own around it: which trials ``--resume`` still runs, numbered as
the earlier sweep numbered them, and the end table."""

from __future__ import annotations

import dataclasses
import json

from sacred import Experiment

from ..spec import SpecError
from .control import NotHeard, read_status, request, send
from .done import describe, find_done
from .folder import FolderInUse
from .progress import Progress
from .results import DONE, SweepResult, TrialResult, from_ledger, ledger_entry, summarize
from .session import Interrupted, Request, Session
from .sweep_driver import SweepDriver

RERUN_STATUSES = ("FAILED", "INTERRUPTED", "TIMEOUT")


def sweep(ex: Experiment, grid, req: Request) -> SweepResult:
    """Run every trial of a resolved grid on Ray (see ``sacred_ray.run_sweep``)."""
    settings = grid.settings
    session = Session(ex, grid, "sweep", req)
    try:
        session.open()
    except FolderInUse as busy:
        return hand_over(session, grid, busy)
    again = req.resume or bool(req.rerun)
    trials = keep_numbers(grid.trials, session.folder.read_numbers()) if again else list(grid.trials)
    numbered = trials
    session.write_spec(trials)
    trials, results = _to_run(ex, session, trials)
    if not trials:
        session.close()
        out = SweepResult(settings.name, session.folder.path, sorted(results, key=lambda r: r.trial.index))
        out.report = (f"nothing to run: all {len(numbered)} trials are done\n"
                      + summarize(out, req.sort or settings.metric, settings.mode, session.folder)
                      + session.closing_notes())
        return out

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
            skips = req.skip_done or settings.skip_done
            driver = SweepDriver(session, trials, window, bar, known={t.key: t.index for t in numbered},
                                 skip=(lambda added: skip_done(ex, session, added)) if skips else None)
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


def _to_run(ex: Experiment, session: Session, trials: list) -> tuple:
    """(the trials this sweep runs, the results of those it does not): --rerun failed keeps
    the earlier sweep's others, --resume its done ones, --skip-done those earlier runs hold."""
    req, name = session.req, session.settings.name
    results = []
    if req.rerun:
        trials, results = _failed_again(trials, session.earlier)
    elif req.resume:
        trials, results = _resumed(trials, session.earlier)
        if not trials:
            how = "COMPLETED" if all(r.status == "COMPLETED" for r in results) else "done"
            print(f"resume: all {len(results)} trials of {name!r} are already {how}; nothing to run")
        elif results:
            print(f"resume: {len(results)} trials already done, {len(trials)} to run")
    if trials and (req.skip_done or session.settings.skip_done):
        trials, skipped = skip_done(ex, session, trials)
        results += skipped
    return trials, results


def _resumed(trials: list, earlier: list) -> tuple:
    """(trials still to run, results of those the ledger has done) for --resume: COMPLETED, or
    SKIPPED for an earlier run that holds them."""
    previous = _latest(earlier)
    done = [t for t in trials if previous.get(t.key, {}).get("status") in DONE]
    results = [from_ledger(t, previous[t.key]) for t in done]
    return [t for t in trials if t not in done], results


def _failed_again(trials: list, earlier: list) -> tuple:
    """(the trials whose last run FAILED, was INTERRUPTED or TIMEOUT, the results of the rest
    of the earlier sweep) for --rerun failed; a trial the earlier sweep never ran stays unrun."""
    previous = _latest(earlier)
    again = [t for t in trials if previous.get(t.key, {}).get("status") in RERUN_STATUSES]
    kept = [t for t in trials if t.key in previous and t not in again]
    never = len(trials) - len(again) - len(kept)
    print(f"rerun failed: {len(again)} trial(s) FAILED, INTERRUPTED or TIMEOUT to run; {len(kept)} kept as they "
          f"ended" + (f"; {never} the earlier sweep never ran are left (--resume runs them)" if never else ""))
    return again, [from_ledger(t, previous[t.key]) for t in kept]


def _latest(earlier: list) -> dict:
    """Trial key -> the ledger line of its last run (a retried attempt's line is followed by the next)."""
    return {entry.get("key"): entry for entry in earlier}


def skip_done(ex: Experiment, session: Session, trials: list) -> tuple:
    """(the trials to run, a SKIPPED result for each trial an earlier COMPLETED run holds); the
    ledger records each skip with that run, so --resume and load_sweep know them."""
    settings = session.settings
    done = find_done(ex, trials, session.launch.prototypes, session.sources, settings.skip_ignore,
                     metric=session.req.sort or settings.metric)
    print(describe(done, len(trials)))
    skipped = []
    for t in trials:
        d = done.get(t.key)
        if d is not None:
            result = TrialResult(trial=t, status="SKIPPED", run_id=d.run_id, result=d.result, metrics=d.metrics,
                                 config=d.config, done_in=d.entry())
            session.folder.record(ledger_entry(result))
            skipped.append(result)
    session.beacon.skipped(skipped)
    return [t for t in trials if t.key not in done], skipped


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
