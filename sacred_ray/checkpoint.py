"""``sacred_ray.save`` and ``sacred_ray.restore``: a trial's state, kept so that it survives.

    state = sacred_ray.restore()        # None on a fresh start, else what was saved last
    ...
    sacred_ray.save({"model": model, "epoch": epoch})   # or save(directory="ckpt/") for big states

In a sweep each trial has its own folder, ``sweeps/<name>/checkpoints/<trial key>/`` (or under
``sweep.storage`` / ``tune.storage``: a shared path or a URI such as ``s3://bucket/prefix``,
reached through pyarrow's file systems, the layer Ray's own storage uses), holding its last
``keep`` checkpoints: each ``<number>/`` with ``state.pkl`` or ``files/``, and ``meta.json`` (the
step it was saved at and when), written last. A checkpoint without its ``meta.json`` is not one
(a worker died while writing it; object stores have no atomic rename of a folder): it is never
restored and the next save removes it. ``restore()`` returns the newest: after a restart of the
trial (its worker died), a retry, or ``--resume`` of the sweep.

Alone (``python my_exp.py with ...``) nothing is restored (``restore()`` is None) and
``save()`` writes the state once, to ``./checkpoints/state.pkl`` (or copies the directory
to ``./checkpoints/files/``), replacing the one before.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from typing import Any, Optional

from .storage import filesystem, join

ALONE = "checkpoints"
META = "meta.json"
_active: Optional[TrialCheckpoints] = None  # the running trial's, set by the worker around its run


class TrialCheckpoints:
    """One trial's checkpoint folder (a path or a URI): numbered checkpoints, the newest ``keep`` kept."""

    def __init__(self, folder: str, keep: int = 2):
        self.location = folder
        self.keep = max(int(keep), 1)
        self.step: Optional[int] = None  # the run's last logged step, for meta.json
        self.run_id = None  # () -> the id of the Sacred run saving (meta.json names it: a new run resumed from it says so)
        self.on_saved = None  # called after each save: the run's observers record what it logged so far
        self.copies: list = []  # the folders restore() copied a saved directory into, removed when the run ends
        self._fs: Optional[tuple] = None

    @property
    def fs(self):
        if self._fs is None:  # pyarrow is imported only by trials that keep state
            self._fs = filesystem(self.location)
        return self._fs[0]

    @property
    def root(self) -> str:
        self.fs  # noqa: B018 - resolves the location
        return self._fs[1]

    def _listing(self) -> tuple:
        """(complete checkpoint numbers, every numbered folder), both sorted."""
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        folders = sorted(int(i.base_name) for i in infos if i.type == pafs.FileType.Directory and i.base_name.isdigit())
        if not folders:
            return [], []
        metas = self.fs.get_file_info([f"{self.root}/{n}/{META}" for n in folders])
        return [n for n, m in zip(folders, metas) if m.type == pafs.FileType.File], folders

    def numbers(self) -> list:
        return self._listing()[0]

    def latest(self) -> Optional[str]:
        """The newest complete checkpoint, as a path in ``fs``."""
        numbers = self.numbers()
        return f"{self.root}/{numbers[-1]}" if numbers else None

    def save(self, state: Any = None, directory: Optional[str] = None, step: Optional[int] = None) -> str:
        import pyarrow.fs as pafs

        target, number, done = self._begin()
        try:
            if directory is not None:
                if not os.path.isdir(directory):
                    raise NotADirectoryError(f"sacred_ray.save: directory={directory!r} is not a folder")
                if self._local:  # a copy of its own, subfolders made as it goes (pyarrow's makes none)
                    shutil.copytree(directory, f"{target}/files")
                else:
                    pafs.copy_files(os.path.abspath(directory), f"{target}/files",
                                    source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
            else:
                with self.fs.open_output_stream(f"{target}/state.pkl") as f:
                    _pickle_into(f, state)
            self._durable(target)  # on disk before meta.json declares the checkpoint complete
            self._write_meta(target, {"step": step if step is not None else self.step, "time": time.time(),
                                      "pid": os.getpid(), "run_id": self.run_id() if self.run_id else None})
            self._durable(target, META)
        except BaseException:
            self._remove(target)
            raise
        done()
        if self.on_saved is not None:
            self.on_saved()
        return join(self.location, str(number))

    def adopt(self, source: str) -> str:
        """Make a copy of another trial's checkpoint (a local folder: ``state.pkl`` or ``files/``,
        and ``meta.json``) this trial's newest checkpoint: a PBT exploit goes on from the donor's state."""
        import pyarrow.fs as pafs

        target, number, done = self._begin()
        for name in sorted(os.listdir(source), key=lambda n: n == META):  # meta.json last
            pafs.copy_files(os.path.join(source, name), f"{target}/{name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        done()
        return join(self.location, str(number))

    def export(self, target: str) -> Optional[dict]:
        """Copy the newest checkpoint into the local folder ``target`` (hard links where it is local);
        its meta.json ({} if unreadable), or None when there is none."""
        import pyarrow.fs as pafs

        latest = self.latest()
        if latest is None:
            return None
        if isinstance(self.fs, pafs.LocalFileSystem):
            copy_linked(latest, target)
        else:
            os.makedirs(target, exist_ok=True)
            pafs.copy_files(latest, target, source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
        try:
            with open(os.path.join(target, META), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def restore(self) -> Any:
        """The newest intact checkpoint's state, or a private copy of its saved folder (the run may
        change it, and pruning may remove the checkpoint, without either touching the other). A
        checkpoint that cannot be read back (its state cut short by a crash) is skipped, saying so
        in the run's output, for the one before it."""
        numbers = self.numbers()
        for number in reversed(numbers):
            try:
                return self._read(f"{self.root}/{number}")
            except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
                print(f"sacred_ray.restore: checkpoint {number} cannot be read back ({e.__class__.__name__}: {e}); "
                      f"trying an earlier one", file=sys.stderr)
        return None

    def _read(self, checkpoint: str) -> Any:
        import pyarrow.fs as pafs

        if self.fs.get_file_info(f"{checkpoint}/files").type == pafs.FileType.Directory:
            local = tempfile.mkdtemp(prefix="sacred_ray_restored_")
            self.copies.append(local)
            if self._local:
                shutil.copytree(f"{checkpoint}/files", local, dirs_exist_ok=True)
            else:  # copy_files wants the folder made
                pafs.copy_files(f"{checkpoint}/files", local, source_filesystem=self.fs,
                                destination_filesystem=pafs.LocalFileSystem())
            return local
        with self.fs.open_input_stream(f"{checkpoint}/state.pkl") as f:
            return pickle.loads(f.readall())  # noqa: S301 - the state save() wrote in this sweep's own folder

    @property
    def _local(self) -> bool:
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    def _durable(self, target: str, name: Optional[str] = None) -> None:
        """fsync what a save wrote under ``target`` (or its file ``name``) and the folders that
        hold it, on a local disk: a power cut after meta.json cannot leave a checkpoint that says
        it is complete and is not. (An object store's write is durable once it returns.)"""
        if not self._local:
            return
        paths = [os.path.join(target, name)] if name else [os.path.join(d, f) for d, _, fs in os.walk(target) for f in fs]
        for path in paths + [d for d, _, _ in os.walk(target)]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:  # a file system that cannot fsync a folder
                pass
            finally:
                os.close(fd)

    def meta(self) -> dict:
        """The newest checkpoint's meta.json ({} when there is none)."""
        latest = self.latest()
        if latest is None:
            return {}
        try:
            with self.fs.open_input_stream(f"{latest}/{META}") as f:
                return json.loads(f.readall())
        except (OSError, ValueError):
            return {}

    def clear(self) -> None:
        """Remove every checkpoint (a retry that starts from scratch)."""
        self._remove(self.root)

    def _write_meta(self, target: str, meta: dict) -> None:
        with self.fs.open_output_stream(f"{target}/{META}") as f:
            f.write(json.dumps(meta).encode())

    def _begin(self) -> tuple:
        """(folder, number) of the next checkpoint, made, and ``done()``: once it is complete, keep the
        newest ``keep`` and remove folders a dead writer left without their meta.json."""
        complete, folders = self._listing()
        number = folders[-1] + 1 if folders else 0
        target = f"{self.root}/{number}"
        self.fs.create_dir(target)

        def done():
            for n in [*complete, number][:-self.keep] + [n for n in folders if n not in complete]:
                self._remove(f"{self.root}/{n}")

        return target, number, done

    def _remove(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except (OSError, FileNotFoundError):
            pass


def resumed_from(folder: str) -> Optional[dict]:
    """{run_id, step} of the run whose checkpoint a new run in ``folder`` starts from (None: no
    checkpoint there). Cheap when a local folder does not exist: pyarrow is not imported."""
    if "://" not in folder and not os.path.isdir(folder):
        return None
    meta = TrialCheckpoints(folder).meta()
    return {"run_id": meta.get("run_id"), "step": meta.get("step")} if meta else None


def latest_step(folder: str) -> Optional[int]:
    """The step the newest checkpoint in ``folder`` was saved at (None: none, or not known)."""
    return TrialCheckpoints(folder).meta().get("step")


def copy_linked(source: str, target: str) -> None:
    """Copy a checkpoint folder by hard links where the file system allows (a checkpoint's files
    are written once and never changed), by copies elsewhere."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def _pickle_into(f, state: Any) -> None:
    try:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as e:  # a lock, a generator, an open file ...
        raise TypeError(f"sacred_ray.save: the state cannot be saved: {e.__class__.__name__}: {e}") from None


def _pickle_to(path: str, state: Any) -> None:
    """Pickle ``state`` straight into ``path`` (no copy of it in memory first)."""
    with open(path, "wb") as f:
        _pickle_into(f, state)


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


def active() -> Optional[TrialCheckpoints]:
    """The running trial's checkpoints (None outside a trial that keeps state)."""
    return _active


def activate(checkpoints: Optional[TrialCheckpoints]) -> None:
    """Set (or clear, with None) the running trial's checkpoints (the worker does, around a run);
    the copies restore() made for the run that ends are removed."""
    global _active
    if _active is not None and _active is not checkpoints:
        for copy in _active.copies:
            shutil.rmtree(copy, ignore_errors=True)
        _active.copies = []
    _active = checkpoints


__all__ = ["TrialCheckpoints", "activate", "copy_linked", "latest_step", "restore", "resumed_from", "save"]
