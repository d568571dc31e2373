"""``sacred_ray.save`` and ``sacred_ray.restore``: a trial's state, kept so that it survives.

    state = sacred_ray.restore()        # None on a fresh start, else what was saved last
    ...
    sacred_ray.save({"model": model, "epoch": epoch})   # or save(directory="ckpt/") for big states

In a sweep each trial has its own folder, ``sweeps/<name>/checkpoints/<trial key>/``, holding its
last ``keep`` checkpoints (each ``<number>/`` with ``state.pkl`` or ``files/``, and
``meta.json``: the step it was saved at and when). A checkpoint is written to a hidden
folder and renamed into place, so a worker that dies mid-save leaves the one before it
intact. ``restore()`` returns the newest: after a restart of the trial (its worker died), a
retry, or ``--resume`` of the sweep.

Alone (``python my_exp.py with ...``) nothing is restored (``restore()`` is None) and
``save()`` writes the state once, to ``./checkpoints/state.pkl`` (or copies the directory
to ``./checkpoints/files/``), replacing the one before.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from typing import Any, Optional

ALONE = "checkpoints"
_active: Optional[TrialCheckpoints] = None  # the running trial's, set by the worker around its run


class TrialCheckpoints:
    """One trial's checkpoint folder: numbered checkpoints, the newest ``keep`` kept."""

    def __init__(self, folder: str, keep: int = 2):
        self.folder = folder
        self.keep = max(int(keep), 1)
        self.step: Optional[int] = None  # the run's last logged step, for meta.json
        self.on_saved = None  # called after each save: the run's observers record what it logged so far

    def numbers(self) -> list:
        try:
            return sorted(int(n) for n in os.listdir(self.folder) if n.isdigit())
        except FileNotFoundError:
            return []

    def latest(self) -> Optional[str]:
        numbers = self.numbers()
        return os.path.join(self.folder, str(numbers[-1])) if numbers else None

    def save(self, state: Any = None, directory: Optional[str] = None, step: Optional[int] = None) -> str:
        numbers = self.numbers()
        number = numbers[-1] + 1 if numbers else 0
        os.makedirs(self.folder, exist_ok=True)
        hidden = os.path.join(self.folder, f".{number}.{os.getpid()}")
        shutil.rmtree(hidden, ignore_errors=True)
        os.makedirs(hidden)
        try:
            _write(hidden, state, directory)
            meta = {"step": step if step is not None else self.step, "time": time.time(), "pid": os.getpid()}
            with open(os.path.join(hidden, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)
            final = os.path.join(self.folder, str(number))
            os.rename(hidden, final)
        except BaseException:
            shutil.rmtree(hidden, ignore_errors=True)
            raise
        for old in self.numbers()[:-self.keep]:
            shutil.rmtree(os.path.join(self.folder, str(old)), ignore_errors=True)
        if self.on_saved is not None:
            self.on_saved()
        return final

    def adopt(self, source: str) -> str:
        """Make a copy of another trial's checkpoint folder (``state.pkl`` or ``files/``, and
        ``meta.json``) this trial's newest checkpoint: a PBT exploit goes on from the donor's state."""
        numbers = self.numbers()
        number = numbers[-1] + 1 if numbers else 0
        os.makedirs(self.folder, exist_ok=True)
        hidden = os.path.join(self.folder, f".{number}.{os.getpid()}")
        shutil.rmtree(hidden, ignore_errors=True)
        copy_linked(source, hidden)
        final = os.path.join(self.folder, str(number))
        os.rename(hidden, final)
        for old in self.numbers()[:-self.keep]:
            shutil.rmtree(os.path.join(self.folder, str(old)), ignore_errors=True)
        return final

    def restore(self) -> Any:
        latest = self.latest()
        if latest is None:
            return None
        if os.path.isdir(os.path.join(latest, "files")):
            return os.path.join(latest, "files")
        with open(os.path.join(latest, "state.pkl"), "rb") as f:
            return pickle.load(f)  # noqa: S301 - the state save() wrote in this sweep's own folder


def latest_step(folder: str) -> Optional[int]:
    """The step the newest checkpoint in ``folder`` was saved at (None: none, or not known)."""
    latest = TrialCheckpoints(folder).latest()
    if latest is None:
        return None
    try:
        with open(os.path.join(latest, "meta.json"), encoding="utf-8") as f:
            return json.load(f).get("step")
    except (OSError, ValueError):
        return None


def copy_linked(source: str, target: str) -> None:
    """Copy a checkpoint folder by hard links where the file system allows (a checkpoint's files
    are written once and never changed), by copies elsewhere."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def _write(folder: str, state: Any, directory: Optional[str]) -> None:
    if directory is not None:
        shutil.copytree(directory, os.path.join(folder, "files"))
        return
    _pickle_to(os.path.join(folder, "state.pkl"), state)


def _pickle_to(path: str, state: Any) -> None:
    """Pickle ``state`` straight into ``path`` (no copy of it in memory first)."""
    with open(path, "wb") as f:
        try:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # a lock, a generator, an open file ...
            raise TypeError(f"sacred_ray.save: the state cannot be saved: {e.__class__.__name__}: {e}") from None


def save(state: Any = None, *, directory: Optional[str] = None, step: Optional[int] = None) -> str:
    """Keep ``state`` (any picklable object), or a copy of the folder ``directory``, as the
    trial's newest checkpoint; returns where it went. ``step`` defaults to the last step the
    run logged a metric at (what a restart says it resumed from)."""
    if state is not None and directory is not None:
        raise TypeError("sacred_ray.save takes a state or directory=..., not both")
    if _active is not None:
        return _active.save(state, directory, step)
    os.makedirs(ALONE, exist_ok=True)
    if directory is not None:
        target = os.path.join(ALONE, "files")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(directory, target)
        return target
    target = os.path.join(ALONE, "state.pkl")
    hidden = f"{target}.{os.getpid()}.tmp"
    try:
        _pickle_to(hidden, state)
    except BaseException:
        os.remove(hidden)
        raise
    os.replace(hidden, target)
    return target


def restore() -> Any:
    """The trial's newest checkpoint: the object saved, or the path of a saved directory's copy;
    None on a fresh start (and always when the experiment runs alone)."""
    return _active.restore() if _active is not None else None


def activate(checkpoints: Optional[TrialCheckpoints]) -> None:
    """Set (or clear, with None) the running trial's checkpoints (the worker does, around a run)."""
    global _active
    _active = checkpoints


__all__ = ["TrialCheckpoints", "activate", "copy_linked", "latest_step", "restore", "save"]
