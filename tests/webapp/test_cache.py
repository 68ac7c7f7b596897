"""The page cache (webapp/cache.py) in front of a small real Starlette app."""
from __future__ import annotations

import gzip
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from webapp.cache import PageCache

BUILT = datetime(2012, 9, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def app_and_calls():
    calls = {"page": 0, "private": 0}

    def page(request):
        calls["page"] += 1
        return PlainTextResponse("AlexNet " * 200, headers={"x-page-cache": "store"})

    def private(request):
        calls["private"] += 1
        return PlainTextResponse("not kept")

    def missing(request):
        return PlainTextResponse("nope", status_code=404, headers={"x-page-cache": "store"})

    app = Starlette(routes=[Route("/page", page), Route("/private", private), Route("/missing", missing)])
    return PageCache(app, last_modified=BUILT), calls


def test_a_marked_page_is_rendered_once(app_and_calls):
    app, calls = app_and_calls
    client = TestClient(app)
    first = client.get("/page", headers={"accept-encoding": "identity"})
    second = client.get("/page", headers={"accept-encoding": "identity"})
    assert first.status_code == second.status_code == 200
    assert first.text == second.text == "AlexNet " * 200
    assert calls["page"] == 1 and app.hits == 1
    assert "x-page-cache" not in first.headers
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["last-modified"] == format_datetime(BUILT, usegmt=True)
    assert int(first.headers["content-length"]) == len(first.content)


def test_query_strings_are_separate_pages(app_and_calls):
    app, calls = app_and_calls
    client = TestClient(app)
    client.get("/page?a=1")
    client.get("/page?a=2")
    client.get("/page?a=1")
    assert calls["page"] == 2


def test_unmarked_and_failed_responses_are_not_kept(app_and_calls):
    app, calls = app_and_calls
    client = TestClient(app)
    client.get("/private")
    client.get("/private")
    assert calls["private"] == 2
    missing = client.get("/missing")
    assert missing.status_code == 404 and "x-page-cache" not in missing.headers
    assert len(app.pages) == 0


def test_conditional_requests_get_304(app_and_calls):
    app, _ = app_and_calls
    client = TestClient(app)
    etag = client.get("/page").headers["etag"]
    assert client.get("/page", headers={"if-none-match": etag}).status_code == 304
    assert client.get("/page", headers={"if-none-match": f'"other", {etag}'}).status_code == 304
    assert client.get("/page", headers={"if-none-match": '"other"'}).status_code == 200
    later = format_datetime(datetime(2013, 1, 1, tzinfo=timezone.utc), usegmt=True)
    earlier = format_datetime(datetime(2012, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert client.get("/page", headers={"if-modified-since": later}).status_code == 304
    assert client.get("/page", headers={"if-modified-since": earlier}).status_code == 200
    assert client.get("/page", headers={"if-modified-since": "not a date"}).status_code == 200


def test_gzip_only_when_asked(app_and_calls):
    app, _ = app_and_calls
    client = TestClient(app)
    raw = client.get("/page", headers={"accept-encoding": "identity"})
    zipped = client.get("/page", headers={"accept-encoding": "gzip, deflate"})
    assert "content-encoding" not in raw.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.text == raw.text  # the client decodes it
    assert int(zipped.headers["content-length"]) < len(raw.content)
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


def test_head_is_answered_as_a_get_without_its_body(app_and_calls):
    app, calls = app_and_calls
    client = TestClient(app)
    head = client.head("/page", headers={"accept-encoding": "identity"})  # a miss: asked of the app as a GET
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len("AlexNet " * 200)
    assert calls["page"] == 1
    assert client.get("/page").text == "AlexNet " * 200  # the cache holds the body, not the empty HEAD answer
    assert calls["page"] == 1
    assert client.head("/private").status_code == 200 and client.head("/private").content == b""


def test_the_cache_is_bounded():
    def page(request):
        return PlainTextResponse(request.url.query, headers={"x-page-cache": "store"})

    app = PageCache(Starlette(routes=[Route("/p", page)]), last_modified=BUILT, max_entries=3)
    client = TestClient(app)
    for i in range(10):
        client.get(f"/p?{i}")
    assert len(app.pages) == 3
    assert client.get("/p?9").text == "9"
