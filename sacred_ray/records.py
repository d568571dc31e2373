"""What sacred-ray and its observers wrote, read back; credentials kept out of what is shown.

The lowest layer that knows about records: the engine writes them, ``analysis`` and
``report`` read them, and both import this module, never each other. ``redact`` hides
every credential in a URL wherever one is shown (the command line in spec.yaml, an
error line, a report).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

from .spec import SpecError

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")


def mongo_uri(value: str) -> Optional[dict]:
    """``-m mongodb://user:pw@host/db`` (which Sacred's own -m cannot parse) as MongoObserver kwargs."""
    if not value.startswith(MONGO_SCHEMES):
        return None
    from pymongo.uri_parser import parse_uri

    try:
        parsed = parse_uri(value)
    except Exception as e:
        raise SpecError("command line", "-m", f"cannot parse {redact(value)!r}: {scrub(str(e), value)}") from None
    return {"url": value, "db_name": parsed.get("database") or "sacred"}


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#\s]*(?:password|passwd|pwd|secret|token|key)[^=&;#\s]*=)[^&;#\s]*")


def redact(text: str) -> str:
    """Hide every credential in anything that looks like a URL: the password of its user
    info (which may itself hold ``/``, ``:`` or ``@``; an empty user name too) and every
    query parameter that names a password, secret, token or key."""
    return _URL.sub(lambda m: _redact_url(m.group(0)), text)


def _redact_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    at = rest.rfind("@")  # the host follows the last '@': an unescaped '@' or '/' may sit in a password
    if at != -1:
        userinfo, rest = rest[:at], rest[at:]
        if ":" in userinfo:
            rest = userinfo.split(":", 1)[0] + ":***" + rest
        else:
            rest = userinfo + rest
    return f"{scheme}://{_SECRET_PARAM.sub(lambda m: m.group(1) + '***', rest)}"


def redact_all(value: Any) -> Any:
    """``value`` (a spec as read from YAML: dicts, lists, scalars) with ``redact`` applied to
    every string in it, keys included: a storage URI's ``KEY:SECRET@`` or ``?secret_key=``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


def secrets_of(url: str) -> list:
    """The credentials ``redact`` hides in ``url``, for scrubbing them from other text too."""
    found = []
    for m in _URL.finditer(url):
        rest = m.group(0).split("://", 1)[1]
        at = rest.rfind("@")
        if at != -1 and ":" in rest[:at]:
            found.append(rest[:at].split(":", 1)[1])
        found += [v.group(0)[len(v.group(1)):] for v in _SECRET_PARAM.finditer(rest)]
    return [f for f in found if f]


def scrub(text: str, url: str) -> str:
    """``text`` (an error about ``url``) with every credential of ``url`` hidden."""
    text = redact(text)
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        # where it stands alone: a password 'p' must not turn "option" into "o***tion"
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


def read_json(path: str) -> dict:
    """A JSON record a file-storage observer wrote ({} when it is missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def file_runs(base: str, name: str, sweep_id: Optional[str] = None) -> list:
    runs = []
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        run = file_run(os.path.join(base, entry), name, sweep_id)
        if run is not None:
            runs.append(run)
    return runs


def file_run(folder: str, name: Optional[str] = None, sweep_id: Optional[str] = None) -> Optional[dict]:
    """A run a FileStorageObserver wrote (of the sweep ``name`` and ``sweep_id``, when given), or None."""
    run = read_json(os.path.join(folder, "run.json"))
    sweep = (run.get("meta") or {}).get("sweep") or {} if run else {}
    if not run or (name is not None and sweep.get("name") != name) or (sweep_id and sweep.get("id") != sweep_id):
        return None
    run["config"] = read_json(os.path.join(folder, "config.json"))
    run["info"] = read_json(os.path.join(folder, "info.json"))
    entry = os.path.basename(folder)
    run["_id"] = int(entry) if entry.isdigit() else entry
    run["_folder"] = folder
    return run


def object_id(value):
    """A MongoDB id as Sacred's ``info.metrics`` names it (a string) back as an ObjectId."""
    try:
        from bson import ObjectId

        return ObjectId(value)
    except Exception:
        return value


def read_spec_header(folder: str) -> dict:
    """The first document of a sweep folder's spec.yaml (the command line, where the runs are
    recorded, the experiment's source md5s); {} when there is none."""
    import os

    import yaml

    try:
        with open(os.path.join(folder, "spec.yaml"), encoding="utf-8") as f:
            header = next(yaml.safe_load_all(f), None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return header if isinstance(header, dict) else {}


def read_jsonl(path: str, torn: Optional[list] = None) -> list:
    """The records of a JSON-lines file (trials.jsonl, ledger.jsonl); a missing file is empty.

    A line cut short by a crash or a full disk is skipped, and only that line: its number
    (from 1) is added to ``torn`` when given, for the caller to say so."""
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        if torn is not None:
                            torn.append(number)
    except OSError:
        pass
    return entries


def append_lines(path: str):
    """``path`` opened to append lines, its last line ended first when a crash cut it short
    (a driver killed mid-write): a new record never runs on into the torn one."""
    f = open(path, "a+", encoding="utf-8")
    try:
        if f.tell() > 0:
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
    except (OSError, ValueError):
        f.close()
        raise
    return f


__all__ = ["MONGO_SCHEMES", "append_lines", "mongo_uri", "read_json", "read_jsonl", "read_spec_header", "redact", "redact_all",
           "scrub", "secrets_of"]
