"""What one trial asks of a Ray node: the ``resources`` of a sweep or search, and of
``distribute``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import SpecError


@dataclass(frozen=True)
class Resources:
    """What one trial asks of a Ray node. ``memory`` is in bytes."""

    cpu: Optional[float] = None
    gpu: Optional[float] = None
    memory: Optional[int] = None
    custom: dict = field(default_factory=dict)

    def merged_over(self, base: Resources) -> Resources:
        """These resources, falling back to ``base`` for what they leave unset."""
        return Resources(
            cpu=base.cpu if self.cpu is None else self.cpu,
            gpu=base.gpu if self.gpu is None else self.gpu,
            memory=base.memory if self.memory is None else self.memory,
            custom={**base.custom, **self.custom},
        )

    def describe(self) -> str:
        parts = []
        if self.cpu is not None:
            parts.append(f"cpu={self.cpu:g}")
        if self.gpu:
            parts.append(f"gpu={self.gpu:g}")
        if self.memory:
            parts.append(f"memory={self.memory / 2**20:.0f}MiB")
        parts += [f"{k}={v:g}" for k, v in self.custom.items()]
        return ", ".join(parts) or "default"


RESOURCES_ATTRIBUTE = "_sacred_ray_resources"  # where ``distribute`` keeps them on the Experiment


def declared_resources(experiment: Any) -> Resources:
    """The per-trial resources given to ``distribute`` (empty when none were)."""
    return getattr(experiment, RESOURCES_ATTRIBUTE, Resources())


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_memory(value: Any, source: str, where: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            try:
                return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
            except ValueError:
                pass
    raise SpecError(source, where, f"memory is bytes or a size like 2GiB or 512MB, got {value!r}")


def _positive_number(value: Any, source: str, where: str, allow_zero: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        floor = "at least 0" if allow_zero else "above 0"
        raise SpecError(source, where, f"must be a number {floor}, got {value!r}")
    return value


def parse_resources(raw: Any, source: str, where: str) -> Resources:
    """``{cpu, gpu, memory, custom}`` from a spec file."""
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise SpecError(source, where, "expected a mapping like {cpu: 1, gpu: 0.5}")
    allowed = ("cpu", "gpu", "memory", "custom")
    for key in raw:
        if key not in allowed:
            raise SpecError(source, f"{where}: {key}", f"unknown resource; accepted: {', '.join(allowed)} (custom: {{name: amount}})")
    custom = raw.get("custom") or {}
    if not isinstance(custom, dict):
        raise SpecError(source, f"{where}: custom", "expected a mapping of resource names to amounts")
    for name, amount in custom.items():
        if str(name).lower() in ("cpu", "gpu", "memory"):
            raise SpecError(source, f"{where}: custom: {name}", f"is not a custom resource; write {str(name).lower()}: "
                                                               f"{amount} beside custom")
        _positive_number(amount, source, f"{where}: custom: {name}")
    gpu = raw.get("gpu")
    if gpu is not None:
        _positive_number(gpu, source, f"{where}: gpu")
        if gpu > 1 and not float(gpu).is_integer():
            raise SpecError(source, f"{where}: gpu", f"a fraction of a GPU must be below 1; above 1 use whole GPUs, got {gpu}")
    cpu = raw.get("cpu")
    if cpu is not None:
        _positive_number(cpu, source, f"{where}: cpu")
    memory = raw.get("memory")
    return Resources(
        cpu=cpu, gpu=gpu,
        memory=parse_memory(memory, source, f"{where}: memory") if memory is not None else None,
        custom=dict(custom),
    )


def resources_from_ray_kwargs(kwargs: dict, where: str = "distribute") -> Resources:
    """``num_cpus=1, num_gpus=0.5, memory=..., resources={...}`` as Ray spells them."""
    allowed = {"num_cpus", "num_gpus", "memory", "resources"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(f"{where}() got unknown resource {sorted(unknown)[0]!r}; accepted: {', '.join(sorted(allowed))}")
    raw = {"cpu": kwargs.get("num_cpus"), "gpu": kwargs.get("num_gpus"),
           "memory": kwargs.get("memory"), "custom": kwargs.get("resources")}
    try:
        return parse_resources({k: v for k, v in raw.items() if v is not None}, "", where)
    except SpecError as e:
        raise TypeError(str(e)) from None
