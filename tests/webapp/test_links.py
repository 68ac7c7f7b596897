"""Canonical site paths -> live URLs and static-export file names (webapp/links.py)."""
from __future__ import annotations

import pytest

from webapp.links import Links, compare_path, static_file


@pytest.mark.parametrize("path,expected", [
    ("/", "index.html"),
    ("/index.json", "index.json"),
    ("/experiments", "experiments.html"),
    ("/experiments?host=guppy9&sort=top5", "experiments.html"),  # filters have no static form
    ("/experiments/120", "experiments/120.html"),
    ("/experiments/147.save", "experiments/147.save.html"),      # an id with a dot is still a page
    ("/experiments/120.json", "experiments/120.json"),
    ("/experiments/120/charts/lr.csv", "experiments/120/charts/lr.csv"),
    ("/compare?ids=120,131", "compare/120,131.html"),
    ("/compare.json?ids=120,131", "compare/120,131.json"),
    ("/compare/120,131", "compare/120,131.html"),
    ("/files/layers/layers-120.cfg", "files/layers/layers-120.cfg.html"),
    ("/files/deviceQuery.txt", "files/deviceQuery.txt.html"),  # a file page, whatever its suffix
    ("/files/layers/layers-120.cfg.json", "files/layers/layers-120.cfg.json"),
    ("/static/site.css", "static/site.css"),
])
def test_static_file_names(path, expected):
    assert static_file(path) == expected


def test_static_links_are_relative_to_the_page():
    here = Links("/experiments/120", static=True)
    assert here.href("/experiments/131") == "131.html"
    assert here.href("/") == "../index.html"
    assert here.href("/files/layers/layer-params-120.cfg#L167") == "../files/layers/layer-params-120.cfg.html#L167"
    assert here.href("/compare?ids=106,120") == "../compare/106,120.html"
    assert Links("/files/layers/layers-120.cfg", static=True).asset("site.css") == "../../static/site.css"
    assert Links("/", static=True).href("/experiments") == "experiments.html"


def test_live_links_keep_the_path_and_quote_it():
    live = Links("/experiments/120")
    assert live.href("/experiments/131") == "/experiments/131"
    assert live.href("/files/a b/c<d.cfg#L2") == "/files/a%20b/c%3Cd.cfg#L2"
    assert live.href("/experiments?host=guppy9") == "/experiments?host=guppy9"
    assert Links("/", root_path="/museum").href("/lineage") == "/museum/lineage"
    assert live.href("#layers") == "#layers"


def test_compare_permalink():
    assert compare_path(["120", "131", "145"]) == "/compare/120,131,145"
