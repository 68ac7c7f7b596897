"""HTML validity of every page type: balanced tags (inline SVG is XML), unique ids, and every
site-relative link and its #fragment resolving; visitor text escaped."""
from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest

from pagecheck import check_page, is_site_relative, split_fragment

ID_ATTRIBUTE = re.compile(r'\sid="([^"]*)"')


@pytest.fixture(scope="session")
def four_gpu_id(site) -> str:
    for e in site.archive.sorted_experiments():
        if e.layers_file and "4gpu" in e.layers_file:
            return e.id
    pytest.fail("no experiment of the release has a 4-GPU layers file")


@pytest.fixture(scope="session")
def fetched(client):
    """url (without fragment) -> (status, ids on the page): each link target fetched once."""
    cache: dict[str, tuple[int, set[str]]] = {}

    def fetch(url: str) -> tuple[int, set[str]]:
        if url not in cache:
            response = client.get(url)
            ids: set[str] = set()
            if response.headers.get("content-type", "").startswith("text/html"):
                ids = set(ID_ATTRIBUTE.findall(response.text))
            cache[url] = (response.status_code, ids)
        return cache[url]

    return fetch


def page_urls(four_gpu: str) -> list[tuple[str, int]]:
    return [("/", 200), ("/experiments", 200), ("/experiments/120", 200), ("/experiments/131", 200),
            (f"/experiments/{four_gpu}", 200), ("/compare?ids=120,131", 200), ("/compare?ids=120,131,145", 200),
            ("/lineage", 200), ("/files", 200), ("/files/layers/layers-120.cfg", 200),
            ("/experiments/does-not-exist", 404)]


PAGE_NAMES = ["entrance", "collection", "experiment-120", "experiment-131", "experiment-4gpu", "compare-2",
              "compare-3", "lineage", "files", "file", "not-found"]


@pytest.fixture(scope="session", params=range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def page(request, client, four_gpu_id):
    url, status = page_urls(four_gpu_id)[request.param]
    response = client.get(url)
    assert response.status_code == status, f"{url}: {response.status_code}"
    return url, response.text


def test_tags_balanced_and_ids_unique(page):
    url, text = page
    report = check_page(text)
    assert not report.all_problems(), f"{url}:\n" + "\n".join(report.all_problems()[:30])
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert report.count("h1") == 1, f"{url} has {report.count('h1')} <h1>"
    assert report.count("title") >= 1
    assert "Traceback" not in text


def test_every_site_link_resolves(page, fetched):
    url, text = page
    report = check_page(text)
    broken, missing_fragments = [], []
    checked = 0
    for tag, link in report.links:
        if not is_site_relative(link):
            continue
        target = urljoin("http://testserver" + url, link)
        path, fragment = split_fragment(target)
        parts = urlsplit(path)
        local = parts.path + ("?" + parts.query if parts.query else "")
        if link.startswith("#") or local == url:
            ids = report.ids.keys()
            status = 200
        else:
            status, ids = fetched(local)
        checked += 1
        if status != 200:
            broken.append(f"<{tag}> {link} -> {status}")
        elif fragment and fragment not in ids:
            missing_fragments.append(f"<{tag}> {link}: no id {fragment!r} on the target")
    assert checked > 0
    assert not broken, f"{url}: {len(broken)} broken links:\n" + "\n".join(broken[:20])
    assert not missing_fragments, f"{url}:\n" + "\n".join(missing_fragments[:20])


def test_experiment_page_links_to_file_lines(client, fetched):
    """The #Lnn links of the layer table and the log land on a line of the file page."""
    report = check_page(client.get("/experiments/120").text)
    line_links = [link for _, link in report.links if link.startswith("/files/") and "#L" in link]
    assert len(line_links) > 20
    for link in line_links:
        path, fragment = split_fragment(link)
        status, ids = fetched(path)
        assert status == 200 and fragment in ids, link


def test_same_page_fragments_exist(client):
    for url in ("/experiments/120", "/files/layers/layers-120.cfg"):
        report = check_page(client.get(url).text)
        local = [link[1:] for _, link in report.links if link.startswith("#") and len(link) > 1]
        assert local, url
        assert not [f for f in local if f not in report.ids], url


@pytest.mark.parametrize("url", [
    "/experiments?q=<script>alert(1)</script>",
    "/experiments?dataset=<script>alert(1)</script>",
    "/experiments?host=<script>alert(1)</script>",
    "/experiments/<script>alert(1)</script>",
    "/files/<script>alert(1)</script>.cfg",
    "/compare?ids=120,<script>alert(1)</script>",
    "/compare/120,<script>alert(1)</script>",
])
def test_visitor_text_is_escaped(client, url):
    response = client.get(url)
    assert response.status_code in (200, 404, 422), url
    assert "<script>alert" not in response.text
    assert "<script" not in response.text.lower()
    if response.status_code == 200:
        assert not check_page(response.text).all_problems()


def test_query_text_is_kept_in_the_form_escaped(client):
    text = client.get('/experiments?q="><b>x').text
    assert 'value="&#34;&gt;&lt;b&gt;x"' in text or 'value="&quot;&gt;&lt;b&gt;x"' in text
    assert "<b>x" not in text


def test_no_page_links_to_an_experiment_that_is_not_in_the_release(client, site):
    """Notes name parents that have no file in the release ("like #97"): they are shown as text,
    as the lineage page does, not linked to a 404."""
    pages = ["/", "/experiments", "/lineage", "/files"] + [f"/experiments/{e.id}"
                                                           for e in site.archive.sorted_experiments()]
    dead: dict[str, set[str]] = {}
    for url in pages:
        for _, link in check_page(client.get(url).text).links:
            path = split_fragment(link)[0]
            match = re.fullmatch(r"/experiments/([^/?]+)", path)
            if match and not match.group(1).endswith(".json") and match.group(1) not in site.archive.experiments:
                dead.setdefault(url, set()).add(match.group(1))
    assert not dead, f"{len(dead)} pages link to missing experiments: " + "; ".join(
        f"{url} -> {sorted(ids)}" for url, ids in list(dead.items())[:12])
