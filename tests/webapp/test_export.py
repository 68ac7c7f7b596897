"""`export-site`: the static exhibit opens from disk. Crawled from index.html, every relative
link and #fragment lands on a file and an id that exist."""
from __future__ import annotations

import html
import json
import posixpath
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from pagecheck import check_page, split_fragment

ID_ATTRIBUTE = re.compile(r'\sid="([^"]*)"')
# The site's templates and SVG writers always double-quote attributes; a regex is ~10x faster
# than html.parser over 1,800 pages (the pages' structure is checked in test_html_valid).
LINK = re.compile(r'<([a-zA-Z][\w:-]*)\b[^>]*?\s(?:href|src)="([^"]*)"')


def links_of(text: str) -> list[tuple[str, str]]:
    return [(tag, html.unescape(url)) for tag, url in LINK.findall(text)]


@pytest.fixture(scope="module")
def exported(site, tmp_path_factory):
    from webapp.export import export_site

    directory = tmp_path_factory.mktemp("export") / "site"
    started = time.perf_counter()
    report = export_site(site, directory, progress=False)
    seconds = time.perf_counter() - started
    files = [p for p in directory.rglob("*") if p.is_file()]
    print(f"\nexport: {len(files)} files ({report.pages} pages, {report.bytes / 1e6:.1f} MB of pages) "
          f"in {seconds:.2f} s")
    return directory, report, files, seconds


@pytest.fixture(scope="module")
def crawl(exported):
    """Breadth-first from index.html over every HTML file reached; returns (visited, problems)."""
    root = exported[0]
    ids_of: dict[Path, set[str]] = {}
    problems: list[str] = []
    absolute: list[str] = []

    def ids(path: Path) -> set[str]:
        if path not in ids_of:
            ids_of[path] = set(ID_ATTRIBUTE.findall(path.read_text(encoding="utf-8")))
        return ids_of[path]

    queue, visited = ["index.html"], {"index.html"}
    while queue:
        name = queue.pop()
        page = root / name
        text = page.read_text(encoding="utf-8")
        for tag, link in links_of(text):
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue
            if link.startswith("/"):
                absolute.append(f"{name}: <{tag}> {link}")
                continue
            path, fragment = split_fragment(link)
            if parts.query:
                problems.append(f"{name}: <{tag}> {link} has a query string (a file cannot answer it)")
                continue
            target_name = posixpath.normpath(posixpath.join(posixpath.dirname(name), unquote(path))) if path else name
            if target_name.startswith(".."):
                problems.append(f"{name}: <{tag}> {link} leaves the export")
                continue
            target = root / target_name
            if not target.is_file():
                problems.append(f"{name}: <{tag}> {link} -> missing {target_name}")
                continue
            if fragment and target.suffix == ".html" and fragment not in ids(target):
                problems.append(f"{name}: <{tag}> {link} -> no id {fragment!r} in {target_name}")
            if target.suffix == ".html" and target_name not in visited:
                visited.add(target_name)
                queue.append(target_name)
    return visited, problems, absolute


def test_export_report(exported):
    root, report, files, seconds = exported
    assert report.files == len(files)
    assert (root / "index.html").is_file() and (root / "404.html").is_file()
    assert (root / "static" / "site.css").is_file()
    assert seconds < 60


def test_no_broken_link_in_the_export(crawl):
    visited, problems, _ = crawl
    assert len(visited) > 100
    assert not problems, f"{len(problems)} broken links:\n" + "\n".join(problems[:25])


def test_no_link_starts_with_a_slash(crawl, exported):
    _, _, absolute = crawl
    assert not absolute, "links that cannot open from disk:\n" + "\n".join(absolute[:25])
    root, _, files, _ = exported
    for path in files:
        if path.suffix in (".html", ".svg"):
            text = path.read_text(encoding="utf-8")
            found = re.findall(r'(?:href|src)="(/[^"]*)"', text)
            assert not found, f"{path.relative_to(root)}: {found[:5]}"


def test_every_experiment_page_and_twin_exists(exported, site, crawl):
    root = exported[0]
    visited = crawl[0]
    for e in site.archive.sorted_experiments():
        page = root / "experiments" / f"{e.id}.html"
        assert page.is_file(), page
        assert f"experiments/{e.id}.html" in visited, f"#{e.id} is not reachable from index.html"
        twin = json.loads((root / "experiments" / f"{e.id}.json").read_text(encoding="utf-8"))
        assert twin["id"] == e.id


def test_export_has_no_traceback_and_valid_pages(exported):
    root, _, files, _ = exported
    for path in files:
        if path.suffix in (".html", ".json", ".svg", ".csv"):
            text = path.read_text(encoding="utf-8")
            assert "Traceback" not in text, path
    for name in ("index.html", "experiments.html", "experiments/120.html", "lineage.html", "404.html"):
        report = check_page((root / name).read_text(encoding="utf-8"))
        assert not report.all_problems(), f"{name}: {report.all_problems()[:10]}"
