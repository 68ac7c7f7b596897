"""The museum site end to end through its HTTP interface (in-process TestClient, plus the
real server for what a client library would tidy away): every page and its JSON twin,
errors, caching headers, downloads."""
from __future__ import annotations

import csv
import gzip
import html
import http.client
import io
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest

from pagecheck import check_page

SVG = "{http://www.w3.org/2000/svg}"


def get_ok(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code}\n{response.text[:2000]}"
    return response


def rows_of(page_html: str, table_class: str) -> list[str]:
    """The <tbody> rows of the first <table class=table_class>, as raw HTML."""
    match = re.search(rf'<table class="{table_class}">(.*?)</table>', page_html, re.S)
    assert match, f"no table.{table_class} on the page"
    body = re.search(r"<tbody>(.*?)</tbody>", match.group(1), re.S)
    return re.findall(r"<tr[ >].*?</tr>", body.group(1), re.S) if body else []


# --- every page type and its twin -------------------------------------------------------

def test_entrance_and_twin_agree(client):
    page = get_ok(client, "/").text
    facts = get_ok(client, "/index.json").json()["facts"]
    assert f"trained\n  {facts['experiments']} network configurations in {facts['runs']} logged runs" in page
    assert "<svg" in page and "The summer of AlexNet" in page
    for host in facts["hosts"]:
        assert f'href="/experiments?host={host}"' in page
    assert f'href="/experiments/{facts["best_top5"]["id"]}"' in page


def test_collection_rows_equal_twin(client, site):
    page = get_ok(client, "/experiments").text
    data = get_ok(client, "/experiments.json").json()
    rows = rows_of(page, "collection")
    assert data["count"] == len(rows) == len(site.archive.experiments) == data["total"]
    shown_ids = [re.search(r'class="eid" href="/experiments/([^"]+)"', row).group(1) for row in rows]
    assert shown_ids == [e["id"] for e in data["experiments"]]
    assert f"{data['count']} of {data['total']} experiments" in page


def test_filtered_collection_agrees_with_twin(client, site):
    host = site.hosts[0]
    page = get_ok(client, f"/experiments?host={host}&sort=top5&order=desc").text
    data = get_ok(client, f"/experiments.json?host={host}&sort=top5&order=desc").json()
    assert 0 < data["count"] < data["total"]
    assert all(host in e["hosts"] for e in data["experiments"])
    rows = rows_of(page, "collection")
    assert len(rows) == data["count"]
    assert f"{data['count']} of {data['total']} experiments match" in page
    # the page's "JSON" link keeps the query
    assert 'href="/experiments.json?host=' in page


def test_experiment_120_page_shows_its_twin(client):
    page = get_ok(client, "/experiments/120").text
    data = get_ok(client, "/experiments/120.json").json()
    assert data["id"] == "120"
    assert "<h1>Experiment #120</h1>" in page
    table_ids = re.findall(r'<tr id="layer-([^"]+)"', page)
    assert table_ids == [row["name"] for row in data["layer_table"]]
    assert {layer["name"] for layer in data["layers"]} <= set(table_ids)
    assert data["layers_file"] and html.escape(data["layers_file"]) in page
    logged = sum(len(run["entries"]) for run in data["log_runs"])
    assert len(re.findall(r'<li class="entry ', page)) == logged
    assert "epoch 26" in page


def test_compare_page_and_twin(client):
    page = get_ok(client, "/compare?ids=120,131").text
    data = get_ok(client, "/compare.json?ids=120,131").json()
    assert data["ids"] == ["120", "131"] and data["permalink"] == "/compare/120,131"
    assert get_ok(client, "/compare/120,131.json").json() == data
    assert get_ok(client, "/compare/120,131").text == page
    header = re.search(r'<table class="side-summary">\s*<thead>(.*?)</thead>', page, re.S).group(1)
    assert re.findall(r'href="/experiments/([^"]+)"', header) == data["ids"]
    # the aligned tables: one row per layer name (layers, then learning parameters)
    aligned = re.findall(r'<table class="aligned">(.*?)</table>', page, re.S)
    assert len(aligned) == 2
    for table, rows in zip(aligned, (data["layers"], data["params"])):
        shown = re.findall(r'<tr class="(same|differs)">\s*<th scope="row">([^<]*)</th>', table)
        assert [name for _, name in shown] == [html.escape(row["name"]) for row in rows]
        assert [cls == "same" for cls, _ in shown] == [row["same"] for row in rows]
    assert page.count("<h3>#120 → #131</h3>") == 2  # what changed, and the notes


def test_lineage_page_and_twin(client):
    page = get_ok(client, "/lineage").text
    data = get_ok(client, "/lineage.json").json()
    items = re.search(r'<ul class="lineage-list">(.*?)</ul>', page, re.S).group(1)
    assert items.count("<li>") == len(data["experiments"])
    assert f"{len(data['experiments'])} experiments, {data['edges']} \"like\" links" in html.unescape(page)


def test_files_page_and_twin(client, site):
    page = get_ok(client, "/files").text
    data = get_ok(client, "/files.json").json()
    assert len(data["files"]) == len(site.readable_files)
    table_rows = re.findall(r"<tr><td><a href=\"/files/", page)
    assert len(table_rows) == len(data["files"])


def test_file_page_and_twin(client):
    page = get_ok(client, "/files/layers/layers-120.cfg").text
    data = get_ok(client, "/files/layers/layers-120.cfg.json").json()
    assert data["path"] == "layers/layers-120.cfg" and not data["binary"]
    line_ids = re.findall(r'<tr id="L(\d+)">', page)
    assert [int(n) for n in line_ids] == list(range(1, len(data["lines"]) + 1))
    assert data["experiment"] and f'href="/experiments/{data["experiment"]}"' in page


def test_every_experiment_renders(client, site):
    ids = [e.id for e in site.archive.sorted_experiments()]
    assert len(ids) == len(site.archive.experiments) == 107
    broken = []
    for eid in ids:
        page = client.get(f"/experiments/{eid}")
        twin = client.get(f"/experiments/{eid}.json")
        if page.status_code != 200 or twin.status_code != 200:
            broken.append((eid, page.status_code, twin.status_code))
            continue
        assert twin.json()["id"] == eid
        assert f"<h1>Experiment #{html.escape(eid)}</h1>" in page.text
        assert "Traceback" not in page.text
    assert not broken


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/experiments/9999", "/experiments/nonexistent", "/no/such/page",
                                 "/files/no-such-file.cfg"])
def test_unknown_address_is_a_404_page_in_the_site_style(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert '<header class="site">' in response.text and 'href="/static/site.css"' in response.text
    assert "Not in the archive" in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("url", ["/experiments/9999.json", "/experiments/9999/charts/lr.csv",
                                 "/experiments/120/charts/nochart.json", "/compare.json?ids=120,9999"])
def test_unknown_json_address_is_a_404_json(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == 404 and body["message"]


@pytest.mark.parametrize("url, field", [
    ("/experiments?since=notadate", "since"),
    ("/experiments?until=2012-13-45", "until"),
    ("/experiments?sort=bogus", "sort"),
    ("/experiments?order=sideways", "order"),
    ("/compare?ids=120", "ids"),
    ("/compare?ids=", "ids"),
    ("/compare?ids=<script>", "ids"),
    ("/compare", "ids"),
])
def test_bad_query_values_are_422_naming_the_field(client, url, field):
    page = client.get(url)
    assert page.status_code == 422, url
    assert f"<code>{field}</code>" in page.text
    assert "<script>" not in page.text and "Traceback" not in page.text
    path, _, query = url.partition("?")
    twin = client.get(path + ".json" + ("?" + query if query else ""))
    assert twin.status_code == 422
    assert [f["field"] for f in twin.json()["fields"]] == [field]


def test_compare_with_an_unknown_id_is_404(client):
    response = client.get("/compare?ids=120,nonexistent")
    assert response.status_code == 404
    assert "nonexistent" in response.text


TRAVERSALS = ["/files/../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd", "/files//etc/passwd",
              "/files/layers/../../../etc/passwd", "/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
              "/files/..%2f..%2f..%2fetc%2fpasswd", "/files/%2fetc%2fpasswd", "/files/../../etc/passwd.json",
              "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_through_the_test_client(client, url):
    response = client.get(url)
    assert response.status_code == 404, url
    assert "root:" not in response.text


def test_path_traversal_against_the_real_server(live_server):
    """httpx tidies "/../" away before sending; http.client sends the path as written."""
    address = urlsplit(live_server)
    for url in TRAVERSALS:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        try:
            connection.request("GET", url)
            response = connection.getresponse()
            body = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        assert response.status in (400, 404), f"{url}: {response.status}"
        assert "root:" not in body, url


# --- caching, compression, HEAD -------------------------------------------------------------

def test_etag_last_modified_and_304(client):
    first = get_ok(client, "/experiments/145")
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and last_modified.endswith("GMT")
    again = client.get("/experiments/145", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get("/experiments/145", headers={"If-None-Match": '"other"'}).status_code == 200
    since = client.get("/experiments/145", headers={"If-Modified-Since": last_modified})
    assert since.status_code == 304
    twin = get_ok(client, "/experiments/145.json")
    assert client.get("/experiments/145.json", headers={"If-None-Match": twin.headers["etag"]}).status_code == 304


def test_gzip_when_asked_and_same_html(client):
    plain = client.get("/lineage", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    zipped = client.get("/lineage", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert zipped.text == plain.text  # httpx decodes the gzip body


def test_gzip_body_decodes_on_the_wire(live_server):
    address = urlsplit(live_server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/experiments/120", headers={"Accept-Encoding": "gzip"})
        zipped = connection.getresponse()
        raw = zipped.read()
        connection.request("GET", "/experiments/120", headers={"Accept-Encoding": "identity"})
        plain = connection.getresponse().read()
    finally:
        connection.close()
    assert zipped.getheader("content-encoding") == "gzip"
    assert gzip.decompress(raw) == plain


@pytest.mark.parametrize("url", ["/experiments/131", "/lineage.json", "/files/LICENSE"])
def test_head_works_before_and_after_a_get(settings, site, url):
    """A HEAD must answer 200 whether or not the page is already in the cache (fresh app here)."""
    from fastapi.testclient import TestClient

    from webapp.app import create_app

    fresh = TestClient(create_app(settings, site))
    before = fresh.head(url)
    full = fresh.get(url, headers={"Accept-Encoding": "identity"})
    after = fresh.head(url, headers={"Accept-Encoding": "identity"})
    assert full.status_code == 200
    assert after.status_code == 200 and after.content == b""
    assert int(after.headers["content-length"]) == len(full.content)
    assert before.status_code == 200, f"HEAD {url} before any GET answered {before.status_code}"
    assert before.content == b""


def test_openapi_lists_the_json_routes(client):
    spec = get_ok(client, "/openapi.json").json()
    paths = set(spec["paths"])
    for route in ("/index.json", "/experiments.json", "/experiments/{eid}.json", "/compare.json",
                  "/compare/{ids}.json", "/lineage.json", "/files.json",
                  "/experiments/{eid}/charts/{kind}.{fmt}"):
        assert route in paths
    # HTML pages are not part of the API
    assert not paths & {"/", "/experiments", "/lineage", "/compare"}
    assert get_ok(client, "/api").headers["content-type"].startswith("text/html")


# --- chart downloads --------------------------------------------------------------------------

def _check_chart_downloads(client, base: str, kinds: list[str], charts_json: list[dict] | None = None) -> None:
    assert kinds
    for i, kind in enumerate(kinds):
        svg = get_ok(client, f"{base}/charts/{kind}.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(svg.text)
        assert root.tag == f"{SVG}svg" and root.get("viewBox")
        table = get_ok(client, f"{base}/charts/{kind}.csv")
        assert table.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(table.text)))
        assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows)
        data = get_ok(client, f"{base}/charts/{kind}.json").json()
        assert data["series"]
        if charts_json is not None:
            assert data == charts_json[i]
        points = sum(len(s["points"]) for s in data["series"])
        assert len(rows) - 1 == points, f"{base} {kind}: CSV rows {len(rows) - 1} != points {points}"


def test_experiment_chart_downloads(client):
    charts = get_ok(client, "/experiments/120.json").json()["charts"]
    kinds = [c["id"].split("-", 1)[0] for c in charts]
    _check_chart_downloads(client, "/experiments/120", kinds, charts)


def test_compare_chart_downloads(client):
    page = get_ok(client, "/compare?ids=120,131").text
    kinds = sorted(set(re.findall(r'href="/compare/120,131/charts/(\w+)\.svg"', page)))
    _check_chart_downloads(client, "/compare/120,131", kinds)
    assert client.get("/compare/120,131/charts/nochart.svg").status_code == 404


def test_download_links_on_the_page_are_the_served_ones(client):
    report = check_page(get_ok(client, "/experiments/120").text)
    downloads = [url for tag, url in report.links if "/charts/" in url]
    assert downloads and all(client.get(url).status_code == 200 for url in downloads)


def test_compare_overlays_charts_by_kind_when_the_baseline_lacks_one(site):
    """#96-16k logged no result; compared with it first, #120's error and cost curves must still show."""
    from webapp.pages.compare import compare_charts

    assert not site.archive.experiment("96-16k").results
    charts = compare_charts(site, ["96-16k", "120"])
    assert set(charts) == {"lr", "results", "cost"}
    assert [s.name for s in charts["cost"].series] == ["#120 logprob cost"]
    assert any(s.name.startswith("#96-16k") for s in charts["lr"].series)
