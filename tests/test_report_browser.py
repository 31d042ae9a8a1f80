"""The HTML report in a real headless browser (Debian's Chromium, driven by playwright).

Skipped when /usr/bin/chromium is absent, unless BATCHGRADER_REQUIRE_BROWSER=1 (which
``.ci/run`` exports after installing it). Screenshots go to pytest's tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import Browser, sync_playwright
from typer.testing import Result

from batchgrader.render.report_html import page as html_page
from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import write_table
from tests.test_report_render import sample

Invoke = Callable[..., Result]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Read at import: the autouse isolation fixture removes every BATCHGRADER_* variable.
REQUIRED = os.environ.get("BATCHGRADER_REQUIRE_BROWSER") == "1"
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium from the system packages, headless, no network features."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is absent: apt-get install -y chromium (.ci/run does)"
        if REQUIRED:
            pytest.fail(message + "; BATCHGRADER_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def check_page(
    browser: Browser, html: Path, width: int, height: int, scheme: str, shot: Path
) -> dict[str, object]:
    """Open ``html``; assert no console error, no request off the file, every chart
    sized, nothing wider than the screen; return the body's colours."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    assert problems == []
    assert requests == [html.as_uri()]  # no CDN, font or image: the page is all there is
    charts = page.locator("[data-chart]")
    assert charts.count() >= 3
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, i
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"page is {overflow}px wide on a {width}px screen"
    page.screenshot(path=str(shot), full_page=True)
    colours: dict[str, object] = page.evaluate(
        "(() => { const s = getComputedStyle(document.body);"
        " return {bg: s.backgroundColor, fg: s.color}; })()"
    )
    context.close()
    return colours


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_the_page_renders_in_chromium(
    browser: Browser, tmp_path: Path, device: str, scheme: str
) -> None:
    """Desktop and phone, light and dark: no console error, every chart has a size,
    nothing overflows the screen, and dark mode really is dark."""
    html = tmp_path / "report.html"
    html.write_text(html_page(sample(labels=10, count=4321)), encoding="utf-8")
    width, height = VIEWPORTS[device]
    colours = check_page(browser, html, width, height, scheme, tmp_path / "shot.png")
    dark = colours["bg"] == "rgb(13, 17, 23)"
    assert dark == (scheme == "dark"), colours
    assert (tmp_path / "shot.png").stat().st_size > 0


def test_a_page_from_a_real_run(
    browser: Browser, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, tmp_path: Path
) -> None:
    """The page ``report --html`` writes for a real graded file loads cleanly on a phone."""
    texts = [f"Essay {i} on rivers. [[score:{i % 5 + 1}]]" for i in range(20)]
    human = [(i + i // 7) % 5 + 1 for i in range(20)]
    src = write_table(isolated_env / "d.csv", pl.DataFrame({"response": texts, "human": human}))
    assert bg("grade", src).exit_code == 0
    html = tmp_path / "page.html"
    result = bg(
        "report", isolated_env / "output" / "d.graded.csv", "--labels", "human", "--html", html
    )
    assert result.exit_code == 0, result.output
    check_page(browser, html, 390, 844, "dark", tmp_path / "phone.png")
