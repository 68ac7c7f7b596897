"""A page cache in front of the app (plain ASGI middleware).

The archive cannot change while the server runs, so a page rendered once is the same for
everyone until restart. A route marks a response cacheable with the header
``x-page-cache: store``; the middleware keeps its body (and a gzip copy), answers later
requests for the same URL without touching the app, and handles ETag / If-None-Match and
If-Modified-Since with 304s. Stored replays are the one thing that can change: the key
includes the database's version, so a run written while the server runs shows at once
(and then only ETags, not dates, decide a 304).
"""
from __future__ import annotations

import gzip
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime

STORE_HEADER = b"x-page-cache"
_MIN_GZIP = 512  # smaller bodies are not worth compressing


@dataclass(frozen=True, slots=True)
class CachedPage:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    gzipped: bytes | None
    etag: bytes


class PageCache:
    def __init__(self, app, *, last_modified, max_entries: int = 4096, version=None):
        self.app = app
        # What else the pages depend on (the stored replays): part of every key, so a new run shows.
        self.version = version or (lambda: None)
        self.last_modified = last_modified
        self.last_modified_header = format_datetime(last_modified, usegmt=True).encode()
        self.max_entries = max_entries
        self.pages: OrderedDict[tuple[bytes, bytes], CachedPage] = OrderedDict()
        self.hits = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        key = (scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""), self.version())
        page = self.pages.get(key)
        if page is not None:
            self.pages.move_to_end(key)
            self.hits += 1
            await self._answer(scope, send, page)
            return
        captured: dict = {}
        chunks: list[bytes] = []
        head = scope["method"] == "HEAD"

        async def capture(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                store = any(name.lower() == STORE_HEADER for name, _ in headers)
                captured["start"] = message
                captured["store"] = store and message["status"] == 200
                if not captured["store"]:
                    message = dict(message, headers=[(n, v) for n, v in headers if n.lower() != STORE_HEADER])
                    await send(message)
                return
            if not captured.get("store"):
                # HEAD: the headers of the GET (length included), without its body.
                await send(dict(message, body=b"") if head else message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                page = self._remember(key, captured["start"], b"".join(chunks))
                await self._answer(scope, send, page)

        # The app's routes answer GET; a HEAD is asked of them as a GET (so it fills the cache too)
        # and answered without the body.
        await self.app(dict(scope, method="GET") if head else scope, receive, capture)

    def _remember(self, key, start, body: bytes) -> CachedPage:
        skip = {STORE_HEADER, b"content-length", b"etag", b"last-modified", b"content-encoding"}
        headers = tuple((n, v) for n, v in start.get("headers", []) if n.lower() not in skip)
        etag = b'"' + hashlib.sha256(body).hexdigest()[:24].encode() + b'"'
        gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= _MIN_GZIP else None
        page = CachedPage(start["status"], headers + ((b"etag", etag), (b"last-modified", self.last_modified_header),
                                                      (b"vary", b"Accept-Encoding")),
                          body, gzipped, etag)
        self.pages[key] = page
        while len(self.pages) > self.max_entries:
            self.pages.popitem(last=False)
        return page

    async def _answer(self, scope, send, page: CachedPage) -> None:
        request_headers = dict((n.lower(), v) for n, v in scope.get("headers", []))
        if self._not_modified(request_headers, page):
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(n, v) for n, v in page.headers if n in (b"etag", b"last-modified", b"vary",
                                                                             b"cache-control")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body, headers = page.body, list(page.headers)
        if page.gzipped is not None and b"gzip" in request_headers.get(b"accept-encoding", b""):
            body = page.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": page.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    def _not_modified(self, headers: dict[bytes, bytes], page: CachedPage) -> bool:
        if b"if-none-match" in headers:
            wanted = [tag.strip().removeprefix(b"W/") for tag in headers[b"if-none-match"].split(b",")]
            return page.etag in wanted or b"*" in wanted
        if b"if-modified-since" in headers and self.version() is None:
            try:
                since = parsedate_to_datetime(headers[b"if-modified-since"].decode("latin-1"))
            except (TypeError, ValueError):
                return False
            return since is not None and since.tzinfo is not None and self.last_modified <= since
        return False
