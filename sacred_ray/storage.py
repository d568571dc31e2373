"""Where sweeps keep files beyond the sweep folder: a local path or a URI.

``sweep.storage`` / ``tune.storage`` may be a shared folder or a URI such as
``s3://bucket/prefix?endpoint_override=...``, reached through pyarrow's file systems (the
layer Ray's own storage uses). Checkpoints, Tune's state and the engine's checks all go
through these three helpers.
"""

from __future__ import annotations

import os
from typing import Optional


def join(location: str, *parts: str) -> str:
    """``location``/``parts``, for a path or a URI (whose query string, e.g. an S3 endpoint, stays last)."""
    base, mark, query = location.partition("?") if "://" in location else (location, "", "")
    return "/".join([base.rstrip("/"), *parts]) + mark + query


def filesystem(location: str) -> tuple:
    """(pyarrow file system, path in it) for a folder path or a URI (``s3://``, ``gs://``, ``file://``)."""
    import pyarrow.fs as pafs

    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def check_storage(location: str) -> Optional[str]:
    """Why checkpoints cannot be written at ``location`` (None: they can): a probe written, read
    and removed through the same file system the trials use."""
    try:
        fs, root = filesystem(location)
        probe = f"{root}/.sacred_ray_probe_{os.getpid()}"
        fs.create_dir(root)
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        with fs.open_input_stream(probe) as f:
            f.readall()
        fs.delete_file(probe)
    except Exception as e:  # pyarrow raises OSError, ValueError, ArrowInvalid ... with the backend's reason
        return " ".join(str(e).split()) or e.__class__.__name__
    return None


__all__ = ["check_storage", "filesystem", "join"]
