"""A trial: one Sacred run that a sweep asks for."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


def canonical(value: Any) -> str:
    """One text for one value (sorted keys, no spaces): what trial keys are made of."""
    return _ENCODER.encode(value)


def nest(dotted: dict) -> dict:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}`` (later keys win)."""
    out: dict = {}
    for key, value in dotted.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class Trial:
    """One run of the experiment: what to change, which named configs, which seed.

    ``updates`` maps dotted config paths to values in the order the file gives them;
    ``named`` maps each ``+label`` of the file to the named configs it applies.
    ``key`` is derived from what the trial runs (updates, named configs, seed), so
    the same trial has the same key in every sweep that contains it.
    """

    index: int
    variant: Optional[str]
    updates: dict = field(default_factory=dict)
    named: dict = field(default_factory=dict)
    seed: Optional[int] = None
    key: str = ""

    @property
    def named_configs(self) -> tuple:
        return tuple(name for names in self.named.values() for name in names)

    @property
    def config_updates(self) -> dict:
        """Nested config updates for ``Experiment.run`` (the seed included)."""
        updates = nest(self.updates)
        if self.seed is not None:
            updates["seed"] = self.seed
        return updates

    @property
    def values(self) -> dict:
        """Everything this trial sets, flat, for display and matching."""
        out: dict = dict(self.updates)
        for label, names in self.named.items():
            out[label] = names[0] if len(names) == 1 else list(names)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def key_digest(updates: dict, named_configs: tuple, seed: Optional[int]) -> bytes:
    """The digest a trial's key is the start of; two trials that run the same config share it."""
    payload = {"updates": updates, "named_configs": list(named_configs), "seed": seed}
    return hashlib.sha1(canonical(payload).encode(), usedforsecurity=False).digest()



def identity(updates: dict, named_configs: tuple, seed: Optional[int]) -> str:
    return canonical([updates, list(named_configs), seed])
