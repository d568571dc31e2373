"""Make docs/report.png, README's picture of a report: the README's example sweep run for real.

    python docs/report_screenshot.py        # needs the [examples] extra and Debian's chromium

Runs `python examples/digits.py ray_sweep with examples/grid.yaml -F runs` in a scratch
folder, opens the sweep's report.html in headless Chromium (Playwright, pointed at the
system's browser) and saves the page's first screens as docs/report.png.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, os.path.join(REPO, "examples", "digits.py"), "ray_sweep", "with",
                        os.path.join(REPO, "examples", "grid.yaml"), "-F", "runs"], cwd=scratch, check=True,
                       env=dict(os.environ, RAY_ADDRESS=os.environ.get("RAY_ADDRESS", "local")))
        report = os.path.join(scratch, "sweeps", "digits-grid", "report.html")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 1700})
            page.goto(f"file://{report}")
            page.wait_for_function("() => document.querySelector('#curves[data-drawn=true]')")
            page.screenshot(path=os.path.join(HERE, "report.png"))
            browser.close()
    print(f"wrote {os.path.join(HERE, 'report.png')}")


if __name__ == "__main__":
    main()
