"""A visitor's note from the browser to the page, in a real headless Chromium against a real
server: the visitor writes it beside a layer, a curator logs in and approves it, and a fresh
visitor sees it beside that layer. The pages' Content-Security-Policy must not get in the way
(a violation shows as a console error, which fails the test). Screenshots to test-artifacts/."""
from __future__ import annotations

import re

import pytest

from site_server import SiteServer
from test_browser import ARTIFACTS, TIMEOUT_MS, Visit, browser  # noqa: F401  (the module's Chromium fixture)

CURATOR, PASSWORD = "mary", "a long curator password"
BODY = "Two columns, one per **GTX 580**: note-e2e-marker <script>alert(1)</script>"


@pytest.fixture(scope="module")
def site_url(archive_root, tmp_path_factory):
    from annotations.accounts import add_curator
    from annotations.store import AnnotationStore

    db = tmp_path_factory.mktemp("annotations-e2e") / "site.sqlite"
    with AnnotationStore(db) as store:  # the account exists before the server starts, as `curator add` makes it
        add_curator(store, CURATOR, PASSWORD)
    server = SiteServer(archive_root, db)
    yield server.url
    server.stop()


def test_a_visitor_note_approved_by_a_curator_appears(browser, site_url):  # noqa: F811
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    visits: list[Visit] = []

    def visit() -> Visit:
        visits.append(Visit(browser, site_url, viewport={"width": 1280, "height": 900}))
        return visits[-1]

    try:
        # A visitor writes a note beside conv1a of #120.
        v = visit()
        page = v.page
        v.goto("/experiments/120")
        row = page.locator("table.layers tr#layer-conv1a")
        row.locator("a.add-note").click()
        page.wait_for_url(re.compile(r"/annotate\?anchor=120/conv1a$"))
        expect(page.locator("h1")).to_contain_text("120/conv1a")
        expect(page.locator("#note-website")).not_to_be_in_viewport()  # the honeypot: off-screen
        page.fill("#note-name", "Geoffrey")
        page.fill("#note-body", BODY)
        v.shot("annotations-01-visitor-form")
        page.get_by_role("button", name="Send the note").click()
        page.wait_for_url(re.compile(r"/annotate/thanks"))
        expect(page.locator("main")).to_contain_text("awaits a curator")
        v.shot("annotations-02-thanks")

        # Not shown while it waits.
        fresh = visit()
        fresh.goto("/experiments/120")
        expect(fresh.page.locator("tr#layer-conv1a")).not_to_contain_text("note-e2e-marker")

        # The curator logs in and approves it.
        c = visit()
        c.page.goto(site_url + "/curator")
        c.page.wait_for_url(re.compile(r"/curator/login$"))
        c.page.fill("#login-name", CURATOR)
        c.page.fill("#login-password", PASSWORD)
        c.page.get_by_role("button", name="Log in").click()
        c.page.wait_for_url(re.compile(r"/curator$"))
        item = c.page.locator("#pending article.queue-item", has_text="note-e2e-marker")
        expect(item).to_have_count(1)
        expect(item.locator(".note-body strong")).to_have_text("GTX 580")
        expect(item.locator(".note-body")).to_contain_text("<script>alert(1)</script>")  # shown as text
        c.shot("annotations-03-curator-queue")
        item.get_by_role("button", name="Approve").click()
        c.page.wait_for_url(re.compile(r"/curator(#annotation-\d+)?$"))
        expect(c.page.locator("#recent article.queue-item.approved", has_text="note-e2e-marker")).to_have_count(1)

        # A new visitor sees it beside the layer.
        after = visit()
        after.goto("/experiments/120")
        note = after.page.locator("tr#layer-conv1a .margin-note.annotation", has_text="note-e2e-marker")
        expect(note).to_be_visible()
        expect(note.locator("strong")).to_have_text("GTX 580")
        expect(note).to_contain_text("Geoffrey")
        # The layer table only: the whole page of #120 makes a very large picture.
        after.page.locator("#layers").screenshot(path=str(ARTIFACTS / "annotations-04-approved-on-the-page.png"))
        assert after.page.evaluate("document.scripts.length") == 0

        problems = [p for v in visits for p in v.problems]
        assert not problems, problems
    finally:
        for v in visits:
            v.close()
