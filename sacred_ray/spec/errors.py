"""The one error type of the spec language."""

from __future__ import annotations


class SpecError(ValueError):
    """A sweep file (or the command line) asks for something that cannot run.

    The message is one line that names the file, the key and the fix, e.g.
    ``grid.yaml: grid: 'optimizer.lr2' is not a config entry of 'digits'; did you
    mean 'optimizer.lr'?``. The command line prints it as is and exits with 2.
    """

    def __init__(self, source: str, where: str, message: str):
        self.source = source
        self.where = where
        self.message = message
        parts = [_one_line(str(p)) for p in (source, where) if p]
        super().__init__(": ".join(parts + [_one_line(message)]))


def _one_line(text: str) -> str:
    """Control characters (a key or value that holds a newline) shown escaped: the error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
