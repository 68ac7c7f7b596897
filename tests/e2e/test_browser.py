"""A visitor's walk through the real server in a real headless Chromium (Playwright, sync API).

Uses Debian's /usr/bin/chromium (no `playwright install`). Where the browser or Playwright is
missing the tests are skipped, except in CI (CI=true), where that is a failure. Screenshots of
every step go to $TEST_ARTIFACTS (default: test-artifacts/ in the repository)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # CI has two slow cores
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))


def _unavailable(why: str):
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"browser tests cannot run in CI: {why}")
    pytest.skip(f"browser tests skipped: {why} (set CI=true to make this a failure)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install playwright)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page plus what went wrong on it: failed requests, console errors, script errors."""

    def __init__(self, browser, base_url: str, **context_options):
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.base_url = base_url.rstrip("/")
        self.problems: list[str] = []
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))
        # Failed loads are caught as responses above (with their URL); skip the console's copy.
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                     and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path, wait_until="load", timeout=TIMEOUT_MS)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        return response

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, live_server):
    visits: list[Visit] = []

    def open_visit(**options) -> Visit:
        visits.append(Visit(browser, live_server, **options))
        return visits[-1]

    yield open_visit
    for v in visits:
        v.close()


def test_a_visitors_walk(visit, live_server):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    v = visit(viewport={"width": 1280, "height": 900})
    page = v.page

    # The entrance: heading, the timeline of runs, the headline facts.
    v.goto("/")
    expect(page.locator("h1")).to_have_text("The summer of AlexNet")
    timeline = page.locator("section.timeline svg")
    expect(timeline).to_be_visible()
    assert timeline.locator("rect").count() > 10
    expect(page.locator("dl.facts-grid")).to_be_visible()
    expect(page.locator("dl.facts-grid dt", has_text="experiments")).to_be_visible()
    v.shot("01-entrance")

    # Into the collection.
    page.locator("header.site nav a", has_text="Collection").click()
    page.wait_for_url(re.compile(r"/experiments$"))
    expect(page.locator("h1")).to_have_text("The collection")
    assert page.locator("table.collection tbody tr").count() == 107
    v.shot("02-collection")

    # Experiment #120.
    page.locator("table.collection td.id a.eid", has_text=re.compile(r"^#120$")).click()
    page.wait_for_url(re.compile(r"/experiments/120$"))
    expect(page.locator("h1")).to_have_text("Experiment #120")
    network = page.locator("#network svg")
    expect(network).to_be_visible()
    for layer in ("conv1a", "conv1b", "fc1000"):
        expect(network.locator("text", has_text=re.compile(rf"^{layer}$")).first).to_be_visible()
    assert network.locator("rect").count() >= 20
    expect(page.locator("table.layers tr#layer-conv1a")).to_be_visible()
    expect(page.locator("#log").get_by_text("epoch 26").first).to_be_visible()
    v.shot("03-experiment-120")

    # #131, and from it the comparison with its parent #120.
    v.goto("/experiments/131")
    expect(page.locator("h1")).to_have_text("Experiment #131")
    page.get_by_role("link", name="compare with #120").click()
    page.wait_for_url(re.compile(r"/compare/120,131$"))
    expect(page.locator("h1")).to_have_text("Side by side")
    v.shot("04-compare-120-131")

    # "differences only": a CSS checkbox; its label toggles it.
    same_rows = page.locator("#aligned table.aligned tr.same")
    differing_rows = page.locator("#aligned table.aligned tr.differs")
    assert same_rows.count() > 0 and differing_rows.count() > 0
    expect(same_rows.first).to_be_visible()
    page.locator("label[for=only-diff]").click()
    expect(page.locator("#only-diff")).to_be_checked()
    for i in range(same_rows.count()):
        assert not same_rows.nth(i).is_visible(), f"row {i} of class 'same' still shows"
    for i in range(differing_rows.count()):
        assert differing_rows.nth(i).is_visible(), f"differing row {i} was hidden"
    v.shot("05-compare-differences-only")

    # A chart drawn on a log axis switches to linear (CSS radio buttons, no script).
    figure_id = page.locator("figure.chart", has=page.locator("input.scale-log:checked")).first.get_attribute("id")
    assert figure_id, "no chart on the compare page is drawn on a log axis by default"
    log_figure = page.locator(f"figure.chart#{figure_id}")
    expect(log_figure.locator(".svg-box.log svg")).to_be_visible()
    expect(log_figure.locator(".svg-box.lin svg")).to_be_hidden()
    log_figure.locator("label", has_text=re.compile(r"^linear$")).click()
    expect(log_figure.locator(".svg-box.lin svg")).to_be_visible()
    expect(log_figure.locator(".svg-box.log svg")).to_be_hidden()
    log_figure.scroll_into_view_if_needed()
    v.shot("06-compare-chart-linear")

    assert not v.problems, v.problems


PHONE_PAGES = ["/", "/experiments", "/experiments/120", "/compare/120,131", "/lineage", "/files",
               "/files/layers/layers-120.cfg"]


def test_phone_size_has_no_horizontal_overflow(visit):
    """Wide SVGs and tables scroll inside their own .scroll boxes; the page itself never does."""
    v = visit(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    overflowing = []
    for path in PHONE_PAGES:
        v.goto(path)
        width, inner = v.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if width > inner + 1:
            culprits = v.page.evaluate("""() => {
                const out = [];
                for (const el of document.querySelectorAll('body *')) {
                    const r = el.getBoundingClientRect();
                    if (r.right > window.innerWidth + 1 && !el.closest('.scroll'))
                        out.push(el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
                                 ? '.' + String(el.className).split(' ').join('.') : '') + ' ' + Math.round(r.right));
                }
                return out.slice(0, 5);
            }""")
            overflowing.append(f"{path}: scrollWidth {width} > {inner} ({culprits})")
        name = "phone" + (path.replace("/", "-").replace(",", "_") if path != "/" else "-entrance")
        v.shot(f"07-{name}")
    assert not overflowing, "\n".join(overflowing)
    assert not v.problems, v.problems


def test_artifacts_folder_is_ignored_by_git():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignore = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert "test-artifacts/" in ignore
