"""The two commands on the experiment's own command line; a thin layer over spec and engine.

``python my_exp.py ray_sweep [with] grid.yaml [UPDATE...] [options]`` and the same for
``tune_with``: the plugin hands argv here before Sacred's docopt sees it, so Sacred
never loads the sweep file as config updates. Bad input ends in one line on stderr
and exit status 2.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Optional

from sacred import Experiment
from sacred.arg_parser import get_config_updates

from .display import format_table, format_value
from .spec import SpecError
from .spec.space import trial_count
from .spec.vocabulary import flatten

USAGE = """\
Usage:
  {prog} ray_sweep [with] GRID.yaml [UPDATE...] [options]
  {prog} tune_with [with] SPACE.yaml [UPDATE...] [options]
  {prog} sweep_report SWEEP_FOLDER | MONGO_URL NAME [-o FILE] [--metric M] [--mode min|max] [--sweep-id ID]
  {prog} sweep_status SWEEP [--json]  |  sweep_cancel SWEEP [--trial N ...]
  {prog} sweep_pause SWEEP  |  sweep_continue SWEEP      (each also --address ADDR)

ray_sweep runs every trial of a grid file as a Sacred run on Ray; tune_with runs a
Ray Tune search whose trials are Sacred runs. UPDATEs (key=value) and named configs
after the file apply to every trial. sweep_report (re)writes a sweep's report.html.
sweep_status shows a running (or ended) sweep from any shell; sweep_cancel, sweep_pause
and sweep_continue steer it; the same ray_sweep command with a widened grid, given while
its sweep runs, adds the new trials to it (see: sweep_status --help).

Sweep options:
  --dry-run         print the trials (or the search space) and exit; nothing runs
  --resume          continue the sweep of the same name: completed trials are kept
                    (refused when the experiment's source changed since it ran,
                    unless --changed-source-ok is given too)
  --skip-done       skip every trial that an earlier COMPLETED run (of any sweep, or
                    run alone) in these observers' records ran with the same config
                    and source (also skip_done: true under sweep: or tune:; a search's
                    trial gives Tune that run's result); with --dry-run, say how many
                    and where their runs are
  --rerun failed    run again only the FAILED, INTERRUPTED and TIMEOUT trials of the
                    earlier sweep of the same name (ray_sweep)
  --address ADDR    join this Ray cluster (default: sweep.address, RAY_ADDRESS,
                    else a local Ray is started)
  --submit          start the command as a Ray Job on the cluster whose job server
                    --address names (http://HEAD:8265): the sweep outlives this
                    terminal; see and steer it with sweep_status NAME --address HEAD:6379
  --sort KEY        sort the final table by this metric (default: sweep.metric,
                    else the trial's result)
  -h --help         show this help

Sacred's own options (-m, -F, -c, -n, -l, -b, -C, ...) are accepted and apply to
every trial; see `{prog} --help`.
"""

COMMANDS = ("ray_sweep", "tune_with", "sweep_report", "sweep_status", "sweep_cancel", "sweep_pause", "sweep_continue")
CAMPAIGN = COMMANDS[3:]  # run by sacred_ray.campaign
OWN_VALUE_OPTIONS = ("--address", "--sort", "--rerun")
OWN_FLAGS = ("--dry-run", "--resume", "--changed-source-ok", "--skip-done", "--submit", "--help", "-h")
RERUN = ("failed",)  # what --rerun takes
# Sacred options that make no sense for a sweep, with why.
DROPPED = {
    "--id": "each trial gets its own id",
    "--queue": "a sweep runs its trials, it does not queue them",
    "--print-config": "use --dry-run to see the trials",
    "--pdb": "trials run on Ray workers without a terminal",
    "--unobserved": "a sweep's trials are recorded by the observers you give (-m, -F, ex.observers); give none to record nothing",
}


@dataclass
class SweepRequest:
    """Everything the command line asked for, parsed and checked for form."""

    command: str
    program: str
    spec_path: str = ""
    updates: dict = field(default_factory=dict)
    named_configs: tuple = ()
    options: dict = field(default_factory=dict)
    dry_run: bool = False
    resume: bool = False
    changed_source_ok: bool = False
    skip_done: bool = False
    rerun: Optional[str] = None
    submit: bool = False
    address: Optional[str] = None
    sort: Optional[str] = None
    help: bool = False
    warnings: list = field(default_factory=list)


def _sacred_options(ex: Experiment) -> dict:
    """Map every short and long flag of the experiment's Sacred options to (long flag, takes value)."""
    table = {}
    for opt in ex.all_cli_options:
        long_flag = opt.get_flag()
        short_flag = opt.get_short_flag()
        takes_value = not getattr(opt, "is_flag", getattr(opt, "arg", None) is None)
        for flag in (short_flag, long_flag):
            if flag:
                table[flag] = (long_flag, takes_value)
    return table


def _first_positional_index(ex: Experiment, argv: list) -> Optional[int]:
    options = _sacred_options(ex)
    i = 1
    while i < len(argv):
        token = argv[i]
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            if "=" not in token and options.get(flag, (None, False))[1]:
                i += 1
            i += 1
            continue
        return i
    return None


def first_positional(ex: Experiment, argv: list) -> Optional[str]:
    """The command word of argv (the first argument that is not an option or its value)."""
    index = _first_positional_index(ex, argv)
    return None if index is None else argv[index]


def find_command(ex: Experiment, argv: list) -> Optional[int]:
    """Index in argv of ray_sweep/tune_with if that is the command, else None."""
    index = _first_positional_index(ex, argv)
    return index if index is not None and argv[index] in COMMANDS else None


def parse(ex: Experiment, argv: list) -> SweepRequest:
    """Parse argv (with argv[0] the program) for one of the two sweep commands."""
    index = find_command(ex, argv)
    if index is None:
        raise SpecError("command line", "", "no ray_sweep or tune_with command found")
    req = SweepRequest(command=argv[index], program=os.path.basename(argv[0] or "my_exp.py"))
    options = _sacred_options(ex)
    tokens = argv[1:index] + argv[index + 1:]
    positional: list = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        i = _option(req, token, tokens, i, options)
    if req.help:
        return req
    positional = [p for p in positional if p != "with"]
    if not positional:
        raise SpecError(
            "command line", req.command,
            f"needs a sweep file: {req.program} {req.command} with {'grid' if req.command == 'ray_sweep' else 'space'}.yaml",
        )
    spec_file, rest = positional[0], positional[1:]
    if "=" in spec_file:
        raise SpecError("command line", req.command, f"the sweep file comes first, before updates like {spec_file}")
    req.spec_path = os.path.abspath(spec_file)
    try:
        nested, named = get_config_updates(rest)
    except Exception as e:
        raise SpecError("command line", "", f"cannot parse updates {' '.join(rest)!r}: {e}") from None
    req.updates = flatten(nested, "command line", "")
    req.named_configs = tuple(named)
    return req


def _option(req: SweepRequest, token: str, tokens: list, i: int, options: dict) -> int:
    """Take one option (and its value, from the next token if need be) into ``req``; return
    the index of the token after it."""
    flag, has_value, value = token.partition("=")
    if flag in OWN_FLAGS:
        if has_value:
            raise SpecError("command line", flag, "takes no value")
        if flag in ("-h", "--help"):
            req.help = True
        else:
            setattr(req, flag[2:].replace("-", "_"), True)
        return i
    if flag not in OWN_VALUE_OPTIONS and flag not in options:
        raise SpecError("command line", flag, f"unknown option; see {req.program} {req.command} --help")
    takes_value = flag in OWN_VALUE_OPTIONS or options[flag][1]
    if takes_value and not has_value:
        if i >= len(tokens):
            raise SpecError("command line", flag, "needs a value")
        value = tokens[i]
        i += 1
    elif not takes_value and has_value:
        raise SpecError("command line", flag, "takes no value")
    if flag == "--rerun" and value not in RERUN:
        raise SpecError("command line", "--rerun", f"takes failed (run again the FAILED, INTERRUPTED and TIMEOUT "
                                                   f"trials of the earlier sweep), got {value!r}")
    if flag in OWN_VALUE_OPTIONS:
        setattr(req, flag[2:], value)
        return i
    long_flag = options[flag][0]
    if long_flag in DROPPED:
        req.warnings.append(f"ignoring {flag}: {DROPPED[long_flag]}")
    elif long_flag == "--help":
        req.help = True
    else:
        req.options[long_flag] = value if takes_value else True
    return i


def print_trials(grid, out=sys.stdout) -> None:
    """The --dry-run table of a grid: index, variant, and the values that vary (a long grid:
    its first and last trials, from one pass that holds no more than those)."""
    found = grid.scan
    keys = found.varying
    common = found.common()
    print(f"sweep {grid.settings.name!r} from {grid.source}", file=out)
    if common:
        shown = ", ".join(_cut(f"{k}={format_value(v)}", 80) for k, v in common.items())
        print(f"every trial: {_cut(shown, 400)}", file=out)
    headers = ["#"] + (["variant"] if found.has_variants else []) + keys + ["key"]

    def row(t):
        v = t.values
        return [t.index] + ([t.variant] if found.has_variants else []) + [v.get(k) for k in keys] + [t.key]

    table = format_table(headers, [row(t) for t in found.head] + [row(t) for t in found.tail])
    lines = table.splitlines()
    if found.tail:
        more = found.count - len(found.head) - len(found.tail)
        if more:
            lines.insert(2 + len(found.head), f"... {more:,} more trials (sacred_ray.load_trials lists them all)")
    print("\n".join(lines), file=out)
    print(f"{found.count} trials", file=out)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_space(space, out=sys.stdout) -> None:
    """The --dry-run view of a space file: each variant's space and the Tune settings."""
    s = space.settings
    print(f"search {s.name!r} from {space.source}", file=out)
    for v in space.variants:
        title = f"variant {v.name}" if v.name else "space"
        rows = [[k, d.describe()] for k, d in v.space.items()]
        rows += [[k, f"fixed {format_value(val)}"] for k, val in v.fixed.items()]
        print(f"\n{title}:", file=out)
        print(format_table(["key", "distribution"], rows, max_width=60), file=out)
    scheduler = s.scheduler + (f" {s.scheduler_options}" if s.scheduler_options else "")
    search = s.search + (f" {s.search_options}" if s.search_options else "")
    print("\ntune:", file=out)
    settings = [
        ["metric", f"{s.metric} ({s.mode})"], ["search", search], ["scheduler", scheduler],
        ["num_samples", s.num_samples], ["max_concurrent_trials", s.max_concurrent_trials or "as resources allow"],
        ["resources per trial", s.resources.describe()], ["time_budget_s", s.time_budget_s],
        ["max_failures", s.max_failures],
    ]
    print(format_table(["setting", "value"], settings, max_width=60), file=out)
    print(trial_count(space)[1], file=out)


def main(ex: Experiment, argv: list) -> int:
    """Run one of the two commands; returns the process exit status."""
    return run(ex, argv)[0]


def run(ex: Experiment, argv: list) -> tuple:
    """Run one of the two commands: ``(exit status, the SweepResult or TuneResult or None)``."""
    from .checks import resolve_grid, resolve_space

    try:
        index = find_command(ex, argv)
        if index is not None and argv[index] == "sweep_report":
            return report_command(argv[index + 1:], os.path.basename(argv[0] or "my_exp.py")), None
        if index is not None and argv[index] in CAMPAIGN:
            from .campaign import command

            return command(argv[index], argv[index + 1:], os.path.basename(argv[0] or "my_exp.py")), None
        req = parse(ex, argv)
        if req.help:
            print(USAGE.format(prog=req.program))
            return 0, None
        for w in req.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if req.command == "ray_sweep":
            spec = resolve_grid(ex, req.spec_path, req.updates, req.named_configs)
        else:
            spec = resolve_space(ex, req.spec_path, req.updates, req.named_configs)
        for w in spec.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if req.submit and not req.dry_run:
            from .submit import submit

            return submit(ex, req, spec), None
        if req.dry_run:
            (print_trials if req.command == "ray_sweep" else print_space)(spec)
            if req.skip_done or spec.settings.skip_done:
                from .engine.done import preview

                print(preview(ex, spec, req.options))
            return 0, None
        from .api import run_command

        result = run_command(ex, req, spec)
        return result.exit_code, result
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None


REPORT_OPTIONS = {"-o": "output", "--output": "output", "--metric": "metric", "--mode": "mode",
                  "--sweep-id": "sweep_id"}


def report_command(tokens: list, program: str) -> int:
    """``sweep_report SWEEP_FOLDER`` or ``sweep_report MONGO_URL NAME``: write the report, say where."""
    from .report import write_report

    try:
        positional, kwargs = [], {}
        tokens = iter(tokens)
        for token in tokens:
            flag, has_value, value = token.partition("=")
            if flag in ("-h", "--help"):
                print(USAGE.format(prog=program))
                return 0
            if flag in REPORT_OPTIONS:
                kwargs[REPORT_OPTIONS[flag]] = value if has_value else next(tokens, None)
                if kwargs[REPORT_OPTIONS[flag]] is None:
                    raise SpecError("command line", flag, "needs a value")
            elif token.startswith("-"):
                raise SpecError("command line", flag, f"unknown option of sweep_report; see {program} sweep_report -h")
            else:
                positional.append(token)
        if not 1 <= len(positional) <= 2:
            raise SpecError("command line", "sweep_report", f"give a sweep folder ({program} sweep_report "
                                                            f"sweeps/NAME) or a MongoDB address and a sweep name")
        if kwargs.get("mode") not in (None, "min", "max"):
            raise SpecError("command line", "--mode", f"must be min or max, got {kwargs['mode']!r}")
        looks_like_mongo = positional[0].startswith("mongodb") or positional[0].count(":") == 2
        if len(positional) == 1 and not os.path.isdir(positional[0]) and not looks_like_mongo:
            raise SpecError(positional[0], "", "no such sweep folder; give sweeps/NAME, or a MongoDB address and a "
                                               "sweep name")
        with warnings.catch_warnings(record=True) as said:  # several sweeps of the name: which was read
            warnings.simplefilter("always")
            path = write_report(*positional, **kwargs)
        for w in said:
            print(f"warning: {w.message}", file=sys.stderr)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
