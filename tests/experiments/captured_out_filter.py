"""Sacred's examples/captured_out_filter.py as published (a progress counter that the filter
reduces to its last state), with sacred-ray: code after ex.run_commandline() reads the Run."""
import sys
import time

from sacred import Experiment
from sacred.utils import apply_backspaces_and_linefeeds

import sacred_ray  # noqa: F401

ex = Experiment("progress")
ex.captured_out_filter = apply_backspaces_and_linefeeds


def write_and_flush(*args):
    for arg in args:
        sys.stdout.write(arg)
    sys.stdout.flush()


@ex.config
def config():
    n = 5


@ex.main
@ex.distribute
def main(n):
    for i in range(n):
        write_and_flush("\b" * 4 + f"{i:>3}%")
        time.sleep(0.01)
    write_and_flush("\n")
    return n


if __name__ == "__main__":
    run = ex.run_commandline()
    print("=" * 80)
    print("Captured output: ")
    print(run.captured_out)
