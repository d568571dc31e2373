"""A space file's search plan as Ray Tune runs it: one entry per searcher, one per scheduler.

Each searcher says how it is built from a ``SearchPlan`` and which distributions it can
express; how a distribution looks to Optuna or hyperopt is the distribution's own entry
(``spec.distributions.KINDS``). Adding a searcher is one entry here; adding a
distribution, one entry there.
"""

from __future__ import annotations

import collections
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

from ..spec import SpaceSpec, SpecError
from ..spec.settings import SCHEDULERS
from ..spec.space import SearchPlan


class DefineByRun:
    """Optuna's define-by-run space: pick a variant, then suggest only that variant's parameters."""

    def __init__(self, plan: SearchPlan):
        self.plan = plan

    def __call__(self, trial) -> dict:
        names = [v.name for v in self.plan.variants]
        index = names.index(trial.suggest_categorical("variant", names)) if len(names) > 1 else 0
        for key, dist in self.plan.sampled(index).items():
            dist.kind.optuna(trial, self.plan.param_name(index, key), dist.args)
        return {"variant_index": index}


def hyperopt_space(plan: SearchPlan) -> dict:
    """hyperopt's conditional space: a choice of variants, each branch with only its parameters."""
    from hyperopt import hp

    branches = []
    for index, variant in enumerate(plan.variants):
        branch = {"variant_index": index}
        for key, dist in plan.sampled(index).items():
            label = f"{variant.name}:{key}" if len(plan.variants) > 1 else key
            branch[plan.param_name(index, key)] = dist.kind.hyperopt(hp, label, dist.args)
        branches.append(branch)
    return {"branch": hp.choice("variant", branches) if len(branches) > 1 else branches[0]}


def _basic(plan: SearchPlan, settings) -> tuple:
    """Tune's own generator over every (cell, draw): each cell (variant x grid point) ``num_samples``
    times, a trial's values the draw's of its cell by our samplers (reproducible per cell, key and
    draw). The draw is a number in the trial's config, not a count kept by this process: a restored
    search (``--resume``) draws the trials it had not made yet as the lost driver would have, and
    never draws one again. Tune runs the grid once (``tune_samples``)."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    draws = collections.Counter()  # only for a search begun before the draw was in the config

    def sample(spec):
        cell, draw = spec.config["cell"], spec.config.get("draw")
        if draw is None:
            draws[cell] += 1
            draw = draws[cell] - 1
        return plan.sample_cell(cell, draw)

    space = {"cell": tune.grid_search(list(range(len(plan.cells)))),
             "draw": tune.grid_search(list(range(settings.num_samples))), "params": tune.sample_from(sample)}
    # Tune applies max_concurrent_trials only to a search_alg it makes itself: given one, it
    # exempts the generator, so the limit is the generator's own
    return space, BasicVariantGenerator(random_state=plan.seed, max_concurrent=settings.max_concurrent_trials or 0)


def tune_samples(settings) -> int:
    """Tune's ``num_samples``: 1 for its own generator, whose grid holds every draw; else the setting."""
    return 1 if SEARCHERS[settings.search].build is _basic else settings.num_samples


def _optuna(plan: SearchPlan, settings) -> tuple:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = settings.search_options.get("seed")
    return {}, OptunaSearch(space=DefineByRun(plan), metric=settings.metric, mode=settings.mode, seed=seed)


def _hyperopt(plan: SearchPlan, settings) -> tuple:
    from ray.tune.search.hyperopt import HyperOptSearch

    seed = settings.search_options.get("seed")
    return {}, HyperOptSearch(space=hyperopt_space(plan), metric=settings.metric, mode=settings.mode,
                              random_state_seed=seed, n_initial_points=min(10, settings.num_samples))


@dataclass(frozen=True)
class Searcher:
    """``build(plan, settings) -> (param_space, search_alg)``; ``package``: what must be
    installed; ``form``: the attribute of a distribution's Kind it needs (None: any)."""

    build: Callable
    package: Optional[str] = None
    form: Optional[str] = None


SEARCHERS = {
    "random": Searcher(_basic),
    "grid": Searcher(_basic),
    "optuna": Searcher(_optuna, package="optuna", form="optuna"),
    "hyperopt": Searcher(_hyperopt, package="hyperopt", form="hyperopt"),
}


def check_search_tools(space: SpaceSpec) -> None:
    """Refuse, before anything starts, a searcher or scheduler that is not installed, or a distribution
    the searcher cannot express."""
    scheduler = SCHEDULERS[space.settings.scheduler]
    for package in scheduler.packages:
        try:
            __import__(package)
        except ImportError:
            raise SpecError(space.source, "tune: scheduler", scheduler.missing) from None
    name = space.settings.search
    searcher = SEARCHERS[name]
    if searcher.package:
        try:
            __import__(searcher.package)
        except ImportError:
            raise SpecError(space.source, "tune: search",
                            f'{name} is not installed; pip install "sacred-ray[{name}]"') from None
    if searcher.form is None:
        return
    for v in space.variants:
        for key, dist in v.space.items():
            if dist.name != "grid" and getattr(dist.kind, searcher.form) is None:
                where = f"variants: {v.name}: space: {key}" if v.name else f"space: {key}"
                raise SpecError(space.source, where, f"{name} cannot sample {dist.name}; use uniform or search: random")


def compile_search(plan: SearchPlan, settings) -> tuple:
    """(param_space, search_alg) for Tune, from a search plan."""
    return SEARCHERS[settings.search].build(plan, settings)


def budget(settings) -> Optional[int]:
    """The iterations a scheduler gives a trial at most (None: no such budget, or one counted in
    another ``time_attr`` than Tune's training iterations)."""
    default = SCHEDULERS[settings.scheduler].max_t
    if default is None or settings.scheduler_options.get("time_attr", "training_iteration") != "training_iteration":
        return None
    return settings.scheduler_options.get("max_t", default)


class Resample:
    """A PBT mutation that draws a key's value again from its distribution (picklable: Tune
    keeps its scheduler with the search's state)."""

    def __init__(self, dist, seed: int):
        import random

        self.dist = dist
        self.rng = random.Random(seed)

    def __call__(self):
        return self.dist.sample(self.rng)


class KeepInside:
    """PBT's ``custom_explore_fn``: Tune's explore scales a numeric value by 0.8 or 1.2, which can
    leave the key's distribution (112 * 1.2 = 134 for ``qrandint: [16, 128, 16]``, a value below a
    ``uniform``'s lower bound); each mutated value moves to the nearest one its distribution
    can draw (picklable: Tune keeps its scheduler with the search's state)."""

    def __init__(self, dists: dict):
        self.dists = dists

    def __call__(self, config: dict) -> dict:
        params = config.get("params")
        if isinstance(params, dict):
            for key, dist in self.dists.items():
                if key in params:
                    params[key] = dist.nearest(params[key])
        return config


def _pbt(settings, plan: SearchPlan):
    """PBT over the trial's sampled values (``params`` in Tune's config): categorical keys shift
    to a neighbouring value or are drawn again; numeric ones are scaled by 0.8 or 1.2 or drawn again."""
    from ray.tune.schedulers import PopulationBasedTraining

    options = dict(settings.scheduler_options)
    dists = options.pop("mutations")
    mutations = {key: list(dist.args) if dist.kind.categorical else Resample(dist, zlib.crc32(f"{plan.seed}|{key}".encode()))
                 for key, dist in dists.items()}
    return PopulationBasedTraining(time_attr="training_iteration", hyperparam_mutations={"params": mutations},
                                   custom_explore_fn=KeepInside(dists), **options)


def _pb2(settings, plan: SearchPlan):
    """PB2: PBT whose explore step fits a Gaussian process to the population's progress and picks
    new values inside each key's bounds (the distribution's low and high)."""
    from ray.tune.schedulers.pb2 import PB2

    options = dict(settings.scheduler_options)
    dists = options.pop("mutations")
    bounds = {key: [float(dist.args[0]), float(dist.args[1])] for key, dist in dists.items()}
    return PB2(time_attr="training_iteration", hyperparam_bounds={"params": bounds},
               custom_explore_fn=KeepInside(dists), **options)


def _options_of(class_name: str):
    def build(settings, plan: SearchPlan):
        from ray.tune import schedulers

        return getattr(schedulers, class_name)(**dict(settings.scheduler_options))
    return build


# how each scheduler of ``spec.settings.SCHEDULERS`` is built
BUILDERS = {"fifo": _options_of("FIFOScheduler"), "asha": _options_of("ASHAScheduler"),
            "hyperband": _options_of("HyperBandScheduler"), "median": _options_of("MedianStoppingRule"),
            "pbt": _pbt, "pb2": _pb2}


def make_scheduler(settings, plan: SearchPlan):
    """Tune's scheduler for the ``tune.scheduler`` setting, with its options."""
    return BUILDERS[settings.scheduler](settings, plan)
