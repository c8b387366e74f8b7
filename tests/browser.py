"""Opening a page in Debian's headless Chromium, offline, over the DevTools protocol (playwright).

Playwright drives the system's `chromium` (never a browser it downloads). The page gets no network:
a proxy on a closed loopback port, every host name unresolvable, and the context set offline; every
request the page makes besides its own file is recorded, so a test can require none.

Also a tool: `python -m tests.browser REPORT.html SHOT.png [HEIGHT]` takes the screenshot the README
shows (the top of the page, 1100 pixels wide).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
]


@attrs.frozen
class Visit:
    console: list[str]  #: every console message, as "type: text"
    errors: list[str]  #: console errors and uncaught exceptions
    requests: list[str]  #: every URL the page asked for besides its own file
    value: Any  #: what the script returned
    after: Any = None  #: what `then` returned after the click


def chromium() -> str:
    """The system Chromium; skips the test when it (or playwright) is missing, fails under CI=true."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if path is None:
        problem = "no chromium on PATH (apt-get install chromium; scripts/services.sh installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -r requirements-dev.txt)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs headless Chromium for page tests: {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


def visit(page_file: Path, script: str = "() => null", *, wait_for: str | None = None,
          screenshot: Path | None = None, width: int = 1200, height: int = 900, full_page: bool = True,
          executable: str | None = None, click: str | None = None, then: str = "() => null") -> Visit:
    """Open `page_file`, wait until `wait_for` (a JS function) is true, run `script`, maybe screenshot;
    then, when given, click the element `click` (a playwright selector) like a person and run `then`."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    errors: list[str] = []
    requests: list[str] = []
    own = page_file.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable or chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": height})
            page = context.new_page()

            def on_console(message: Any) -> None:
                console.append(f"{message.type}: {message.text}")
                if message.type == "error":
                    errors.append(f"console error: {message.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            page.on("request", lambda request: requests.append(request.url) if request.url != own else None)
            page.goto(own, wait_until="load")
            if wait_for is not None:
                page.wait_for_function(wait_for, timeout=60_000)
            value = page.evaluate(script)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=full_page)
            after = None
            if click is not None:
                page.locator(click).click()
                page.wait_for_timeout(300)  # plotly redraws on the next animation frame
                after = page.evaluate(then)
        finally:
            browser.close()
    return Visit(console=console, errors=errors, requests=[u for u in requests if not u.startswith("data:")],
                 value=value, after=after)


#: true once plotly has drawn every chart div of a vmafx report
CHARTS_DRAWN = ("() => { const c = [...document.querySelectorAll('.plotly-graph-div')];"
                " return c.length > 0 && c.every(d => d.querySelector('svg.main-svg') && d._fullLayout); }")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m tests.browser REPORT.html SHOT.png [HEIGHT]", file=sys.stderr)
        return 2
    height = int(argv[2]) if len(argv) == 3 else 760
    result = visit(Path(argv[0]), wait_for=CHARTS_DRAWN, screenshot=Path(argv[1]), width=1100, height=height,
                   full_page=False, executable=shutil.which("chromium"))
    for line in result.errors + [f"request: {u}" for u in result.requests]:
        print(line, file=sys.stderr)
    return 1 if result.errors or result.requests else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
