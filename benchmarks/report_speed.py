"""How fast report.html is written and opens, for a sweep of 1,000 trials x 100 logged steps.

    python benchmarks/report_speed.py [--trials 1000] [--steps 100] [--repeats 5]

Runs the sweep once (benchmarks/steps.py with no work per step, recorded by -F), then:
  - reading the records alone (sacred_ray.load_sweep + load_metrics), the floor any report pays;
  - write_report in this process (median of the repeats) and the whole `sweep_report` command
    in a fresh Python (imports included);
  - opening the page in headless Chromium (Debian's, through Playwright) until every plot is
    drawn (median).
Prints medians, the ratio of writing to reading, and each time against its target (written in
under 5 s, open in under 3 s).
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DRAWN = """() => ["parallel", "importance", "curves"].every(id => {
    const el = document.getElementById(id);
    return el && el.getAttribute("data-drawn") === "true";
})"""  # each chart's ECharts 'finished' event has fired


def experiment():
    spec = importlib.util.spec_from_file_location("steps_bench", os.path.join(HERE, "steps.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["steps_bench"] = module
    spec.loader.exec_module(module)
    return module.ex


def make_sweep(folder, trials, steps):
    from sacred_ray.api import run_sweep

    spec = {"fixed": {"steps": steps, "step_seconds": 0.0},
            "random": {"samples": trials, "params": {"quality": {"uniform": [0, 1]}}},
            "sweep": {"name": "report-bench", "dir": os.path.join(folder, "sweep"), "metric": "loss"}}
    start = time.perf_counter()
    result = run_sweep(experiment(), spec, options={"--file_storage": os.path.join(folder, "runs")}, progress=False)
    print(f"sweep of {trials} trials x {steps} steps ran in {time.perf_counter() - start:.1f}s "
          f"(exit {result.exit_code})")
    return os.path.join(folder, "sweep")


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_times(path, repeats):
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox"])
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            start = time.perf_counter()
            page.goto(f"file://{path}")
            page.wait_for_function(DRAWN, timeout=60_000)
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RAY_ADDRESS", "local")
    import sacred_ray
    from sacred_ray.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_sweep(tmp, args.trials, args.steps)
        read = median_time(lambda: (sacred_ray.load_sweep(folder), sacred_ray.load_metrics(folder, "loss")),
                           args.repeats)
        write = median_time(lambda: write_report(folder), args.repeats)
        command = median_time(lambda: subprocess.run([sys.executable, os.path.join(HERE, "steps.py"), "sweep_report",
                                                      folder], check=True, capture_output=True), args.repeats)
        size = os.path.getsize(os.path.join(folder, "report.html")) / 1e6
        opened = open_times(os.path.join(folder, "report.html"), args.repeats)
    print(f"{args.trials} trials x {args.steps} steps, median of {args.repeats}:")
    print(f"  read the records (load_sweep + load_metrics)  {read:.2f}s")
    print(f"  write_report, in process                      {write:.2f}s ({write / read:.2f}x reading; "
          f"{write / 5:.2f} of the 5 s target)")
    print(f"  sweep_report command, fresh Python            {command:.2f}s ({command / 5:.2f} of the 5 s target)")
    print(f"  open in Chromium until every plot is drawn    {opened:.2f}s ({opened / 3:.2f} of the 3 s target)")
    print(f"  report.html                                   {size:.1f} MB")


if __name__ == "__main__":
    main()
