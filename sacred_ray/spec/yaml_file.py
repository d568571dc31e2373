"""Safe YAML loading that refuses duplicate keys instead of keeping the last one."""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import yaml

from .errors import SpecError

MAX_EXPANDED = 100_000  # values a file may stand for once its aliases are expanded


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that raises on a key given twice in one mapping, and on a document whose
    aliases expand to more than ``MAX_EXPANDED`` values (a 400-byte "billion laughs" file
    otherwise stands for billions of values, which every later step would walk)."""

    def compose_document(self):
        node = super().compose_document()
        if _expanded_size(node, {}) > MAX_EXPANDED:
            raise _TooLarge()
        return node


def _expanded_size(node, memo: dict) -> int:
    """How many values ``node`` stands for with every alias written out (capped), in linear time."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_EXPANDED + 1)
    return memo[id(node)]


class _TooLarge(Exception):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key, line):
        super().__init__(key, line)
        self.key = key
        self.line = line


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# YAML 1.1 (PyYAML) reads 1e-3 as the string '1e-3'; a sweep file means the number, as YAML 1.2,
# JSON and Python read it.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with a safe loader; every problem is a one-line SpecError."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooLarge:
        raise SpecError(source, "", f"stands for more than {MAX_EXPANDED:,} values once its YAML aliases (*name) are "
                                    f"expanded; write the values out, or use a generator like {{range: [0, 100]}}") from None
    except _DuplicateKey as e:
        raise SpecError(
            source, f"line {e.line}", f"key {e.key!r} is given twice; keep one of them"
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise SpecError(source, where, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise SpecError(source, "", f"not valid YAML: {str(e).splitlines()[0]}") from None


def read_yaml(path: str) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is a SpecError."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise SpecError(path, "", "no such file; check the path of the sweep file")
    if os.path.isdir(path):
        raise SpecError(path, "", "is a directory; give the path of a YAML sweep file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(path, "", f"cannot be read ({e.__class__.__name__}); check the file") from None
    return parse_yaml(text, name)


def read_spec(spec: Any, source: Optional[str], sections: tuple, empty_hint: str) -> tuple:
    """``(raw, source, path)`` of a spec file (a path) or an already parsed dict: a mapping of
    sections, else a one-line SpecError naming the file."""
    path = None
    if isinstance(spec, dict):
        raw, source = spec, source or "<spec>"
    else:
        path = os.path.abspath(os.fspath(spec))
        raw, source = read_yaml(path), source or os.path.basename(path)
    if raw is None:
        raise SpecError(source, "", f"is empty; {empty_hint}")
    if not isinstance(raw, dict):
        raise SpecError(source, "", f"must be a mapping of sections ({', '.join(sections)}), got {type(raw).__name__}")
    return raw, source, path
