"""Give a plain ``sacred.Experiment`` the ``ray_sweep`` and ``tune_with`` commands.

Importing ``sacred_ray`` adds one method, ``Experiment.distribute``, to Sacred's
``Experiment`` class (nothing else of Sacred is changed). Either form enables the
commands; both work directly under ``@ex.automain``::

    @ex.automain
    @ex.distribute(num_cpus=1, num_gpus=0.5)   # or bare: @ex.distribute
    def main(...): ...

    sacred_ray.distribute(ex, num_cpus=1)      # anywhere before automain runs
"""

from __future__ import annotations

import atexit
import functools
from typing import Any, Callable, Optional

from sacred import Experiment

from .spec.resources import RESOURCES_ATTRIBUTE, resources_from_ray_kwargs


def ray_sweep():
    """Run every trial of a grid file as a Sacred run on Ray (see: ray_sweep --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def tune_with():
    """Run a Ray Tune search whose trials are Sacred runs (see: tune_with --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def sweep_report():
    """Write a sweep's report.html (see: sweep_report --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def sweep_status():
    """Show a running or ended sweep (see: sweep_status --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def sweep_cancel():
    """Cancel a running sweep, or some of its trials (see: sweep_status --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def sweep_pause():
    """Start no new trial of a running sweep until sweep_continue (see: sweep_status --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


def sweep_continue():
    """Let a paused sweep start trials again (see: sweep_status --help)."""
    raise RuntimeError(_NOT_FROM_SACRED)


_NOT_FROM_SACRED = (
    "ray_sweep and tune_with run from the experiment's command line "
    "(python my_exp.py ray_sweep with grid.yaml) or from sacred_ray.run_sweep / "
    "sacred_ray.run_tune, not through Experiment.run"
)


def distribute(ex: Experiment, **resources: Any) -> Experiment:
    """Enable ``ray_sweep`` and ``tune_with`` on ``ex``; ``resources`` apply to every trial.

    ``resources`` are Ray's names: ``num_cpus``, ``num_gpus`` (fractions allowed),
    ``memory`` (bytes or a size like ``"2GiB"``) and ``resources`` (custom, a dict).
    A sweep file's ``sweep.resources`` / ``tune.resources`` override them. Calling it
    again only updates the resources.
    """
    if not isinstance(ex, Experiment):
        raise TypeError(f"distribute() takes a sacred.Experiment, got {type(ex).__name__}")
    setattr(ex, RESOURCES_ATTRIBUTE, resources_from_ray_kwargs(resources))
    if getattr(ex, "_sacred_ray_enabled", False):
        return ex
    ex._sacred_ray_enabled = True
    sacred_commandline = ex.run_commandline

    @functools.wraps(sacred_commandline)
    def run_commandline(argv=None):
        from .cli import find_command, run

        argv = _argv(argv)
        if find_command(ex, argv) is not None:
            atexit.unregister(_skip_final_collections)  # once, however often it is called
            atexit.register(_skip_final_collections)
            code, result = run(ex, argv)
            if result is None or code != 0 or _from_automain():
                # automain ends the script, and, as after a Sacred run that failed, so does a sweep
                # that did not complete: the exit status is the sweep's
                raise SystemExit(code)
            return result  # called as ex.run_commandline(): the script goes on, as after a completed Sacred run
        near_miss(ex, argv)
        return sacred_commandline(argv)

    ex.run_commandline = run_commandline
    for command in (ray_sweep, tune_with, sweep_report, sweep_status, sweep_cancel, sweep_pause, sweep_continue):
        if command.__name__ not in ex.commands:
            ex.command(command, unobserved=True)
    return ex


def _from_automain() -> bool:
    """Whether Sacred's ``automain`` called ``run_commandline`` (rather than the user's own code)."""
    import sys

    caller = sys._getframe(2)  # 0: here, 1: run_commandline, 2: its caller
    return caller.f_code.co_name == "automain" and caller.f_globals.get("__name__") == "sacred.experiment"


def _skip_final_collections() -> None:
    """Let the interpreter's exit skip its final garbage collections (an atexit handler).

    Registered by a sweep's command line, so it runs at the process's exit, after every run
    is recorded and Ray is shut down. What is left then is Python's teardown, whose final
    collections walk the whole heap (Sacred, pandas and Ray: about half a second on two cores) to
    free memory the OS is about to take back. ``gc.freeze`` puts every object out of their
    reach; atexit handlers, flushing and reference counting are unchanged (Python never
    promised ``__del__`` for objects still alive at exit). A caller that catches the
    SystemExit and goes on is not affected: nothing happens before the exit itself."""
    import gc

    gc.freeze()


def near_miss(ex: Experiment, argv: list) -> None:
    """``ray_swep`` or ``tune-with``: say which command was meant (exit 2) instead of Sacred's usage dump."""
    import difflib
    import sys

    from .cli import COMMANDS, first_positional

    word = first_positional(ex, argv)
    if word is None or word == "with" or word in dict(ex.gather_commands()) or "=" in word:
        return
    match = difflib.get_close_matches(word.replace("-", "_"), COMMANDS, n=1, cutoff=0.75)
    if match:
        print(f"error: command line: unknown command {word!r}; did you mean {match[0]!r}?", file=sys.stderr)
        raise SystemExit(2)


def _argv(argv):
    import sys

    from sacred.utils import ensure_wellformed_argv

    return list(ensure_wellformed_argv(sys.argv if argv is None else argv))


def _distribute_method(self: Experiment, function: Optional[Callable] = None, /, **resources: Any):
    """``@ex.distribute`` or ``@ex.distribute(num_cpus=1, ...)``: see ``sacred_ray.distribute``."""
    if function is not None:
        if resources or not callable(function):
            raise TypeError("use @ex.distribute or @ex.distribute(num_cpus=..., num_gpus=...)")
        distribute(self)
        return function
    distribute(self, **resources)
    return lambda f: f


def install() -> None:
    """Add ``distribute`` to ``sacred.Experiment`` (done once, on import of sacred_ray)."""
    if getattr(Experiment, "distribute", None) is not _distribute_method:
        Experiment.distribute = _distribute_method
