"""What a worker process learns once and reuses for every trial it runs.

A Ray worker process lives on one machine and runs trial after trial, while Sacred, made
for one run per process, works some things out again on every run. Two of them cost
more than everything else sacred-ray adds to a short trial:

- host info: Sacred asks the machine for its CPU model (``cat /proc/cpuinfo``) and its
  GPUs (``nvidia-smi``) on every run, two subprocesses, about 3 ms. They cannot change
  under a running process, so each is asked once; the captured environment variables and
  the experiment's own host-info getters are still gathered for every run.
- file storage: ``FileStorageObserver`` lists the whole runs folder to number each run,
  O(runs) per run. A worker remembers the last folder it made there and starts from
  the next number; Sacred's own loop still skips folders that others made meanwhile
  (``LocalFileStorage``, which also writes each JSON file whole).

The runs recorded are the same as Sacred's; only the work to produce them is saved.
"""

from __future__ import annotations

import copy
import os
from typing import Optional

_STATIC_HOST_INFO = ("hostname", "os", "python_version", "cpu", "gpus")
_FAR_AHEAD = 64  # taken folders a worker steps over before it lists the folder instead
_last_run_folder: dict = {}  # runs folder -> the largest run folder this process made there


def _settings_key() -> tuple:
    from sacred import SETTINGS

    return SETTINGS.HOST_INFO.INCLUDE_CPU_INFO, SETTINGS.HOST_INFO.INCLUDE_GPU_INFO


class _Once:
    """A host-info getter's answer (or its IgnoreHostInfo), kept while Sacred's settings stay."""

    def __init__(self, getter_function):
        self.getter_function = getter_function
        self.answers: dict = {}

    def __call__(self):
        from sacred.host_info import IgnoreHostInfo

        key = _settings_key()
        if key not in self.answers:
            try:
                self.answers[key] = (True, self.getter_function())
            except IgnoreHostInfo:
                self.answers[key] = (False, None)
        known, value = self.answers[key]
        if not known:
            raise IgnoreHostInfo()
        return copy.deepcopy(value)


def remember_host_info() -> None:
    """Make Sacred's machine-level host-info getters ask once per process (idempotent)."""
    from sacred import host_info

    getters = getattr(host_info, "_host_info_gatherers_list", None)
    if not isinstance(getters, list):  # another Sacred: leave it as it is
        return
    for i, getter in enumerate(getters):
        if getter.name in _STATIC_HOST_INFO and not isinstance(getter.getter_function, _Once):
            getters[i] = host_info.HostInfoGetter(_Once(getter.getter_function), getter.name)


def plain_file_storage(observer) -> bool:
    """Whether ``observer`` is Sacred's FileStorageObserver itself (or sacred-ray's copy of one),
    not a subclass that may number or write its runs its own way."""
    from sacred.observers import FileStorageObserver

    return type(observer) in (FileStorageObserver, LocalFileStorage)


def local_copy(observer):
    """This worker's own copy of a file storage observer the driver hands it: a plain
    ``FileStorageObserver`` becomes a ``LocalFileStorage`` (the same files, written as below);
    any other is copied as it is."""
    if not plain_file_storage(observer):
        return copy.copy(observer)
    clone = LocalFileStorage.__new__(LocalFileStorage)
    clone.__dict__.update(copy.copy(vars(observer)))
    return clone


def _file_storage_class():
    from sacred.observers import FileStorageObserver

    return FileStorageObserver


class LocalFileStorage(_file_storage_class()):
    """Sacred's FileStorageObserver, as a worker runs it: it numbers its run after the last one
    this process made in the folder instead of listing the folder, and writes each JSON file
    whole (a temporary file renamed over it). A worker can be killed while it writes: its
    driver's local Ray goes down with a killed driver, in the middle of the worker writing its
    run's INTERRUPTED end; Sacred's own write truncates first, and left an empty run.json."""

    def _maximum_existing_run_id(self) -> int:
        base = os.path.abspath(self.basedir)
        last = _last_run_folder.get(base)
        # Look as Sacred does when this process made no run here yet, when the remembered folder
        # is gone (the runs folder was cleared since: numbering starts over) or when many runs were
        # made since this worker's last (it ran one long trial meanwhile): Sacred tries last+1,
        # last+2, ... and gives up after 1000 taken folders.
        if last is None or not os.path.isdir(os.path.join(base, str(last))) or os.path.exists(
                os.path.join(base, str(last + _FAR_AHEAD))):
            return super()._maximum_existing_run_id()
        return last

    def save_json(self, obj, filename) -> None:
        import json
        import threading

        from sacred.serializer import flatten

        path = os.path.join(self.dir, filename)
        temporary = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"  # a run's threads write apart
        with open(temporary, "w") as f:
            json.dump(flatten(obj), f, sort_keys=True, indent=2)
        os.replace(temporary, path)


def made_run_folder(observer) -> None:
    """Remember the run folder ``observer`` made (after its run started)."""
    folder: Optional[str] = getattr(observer, "dir", None)
    name = os.path.basename(folder) if folder else ""
    if name.isdigit():
        base = os.path.abspath(os.path.dirname(folder))
        _last_run_folder[base] = max(_last_run_folder.get(base, 0), int(name))
