"""The museum site: ``create_app(settings)`` builds the FastAPI app.

The archive is parsed once, here, before the first request. Every page is a data
function (webapp/pages) rendered twice: HTML through Jinja2 and its JSON twin at the
same address plus ``.json``. Routes stay thin; the page cache (webapp/cache.py) keeps
rendered pages, since nothing changes while the server runs.
"""
# (no `from __future__ import annotations`: FastAPI reads the route signatures, local aliases included)

import logging
import time
from typing import Annotated, Literal
from urllib.parse import parse_qs, quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import auth

from .cache import PageCache
from .errors import BadQuery, NotFound
from .links import Links, compare_path
from .render import STATIC, json_text, render_html
from .settings import Settings
from .site import Site

log = logging.getLogger("alexnet_archive.web")

CACHEABLE = {"x-page-cache": "store", "cache-control": "public, max-age=300"}
# Forms, the curator's pages and anything with a cookie: never kept by the page cache or a proxy.
PRIVATE = {"cache-control": "no-store", "pragma": "no-cache"}
# No page has a script; inline style attributes are used by the SVG drawings.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                           "script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")
ChartFormat = Literal["svg", "csv", "json"]


def create_app(settings: Settings, site: Site | None = None) -> FastAPI:
    site = site or Site.load(settings)
    app = FastAPI(
        title="alexnet-archive",
        summary="The 2012 AlexNet experiments (cuda-convnet, Computer History Museum release) as JSON.",
        description="Every page of the museum site has a JSON twin at the same address plus `.json`; "
                    "those twins are this API. The archive is read once at start-up and never changes "
                    "while the server runs.",
        version="0.1.0", docs_url="/api", redoc_url=None, root_path=settings.root_path,
    )
    app.state.site = site
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_pages(app)
    _add_routes(app)
    # The cache sits outside everything else, so a cached page costs no routing at all.
    app.add_middleware(PageCache, last_modified=site.last_modified, version=site.runs_version)
    # ... except the security headers, which go on cached and fresh pages alike.
    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Content-Security-Policy (and nosniff) on every HTML page but the API docs, whose page
    (FastAPI's Swagger UI) loads its script from a CDN."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        docs = path.endswith(("/api", "/api/oauth2-redirect")) and "/files/" not in path

        async def add_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = dict((n.lower(), v) for n, v in headers).get(b"content-type", b"")
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if content_type.startswith(b"text/html") and not docs and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, add_headers)


def app_from_env() -> FastAPI:
    """uvicorn's factory for `serve --workers N`: each worker process reads the settings from the environment."""
    return create_app(Settings.from_env())


# --- responses ---------------------------------------------------------------------

def _links(request: Request, canonical: str) -> Links:
    return Links(current=canonical, root_path=request.scope.get("root_path", ""))


def page(request: Request, template: str, context: dict, canonical: str, json_path: str) -> HTMLResponse:
    links = _links(request, canonical)
    html = render_html(template, context | {"canonical": canonical, "json_path": json_path}, links,
                       site_of(request).archive.experiments)
    headers = dict(CACHEABLE)
    headers["link"] = f'<{links.href(json_path)}>; rel="alternate"; type="application/json"'
    return HTMLResponse(html, headers=headers)


def twin(data) -> Response:
    return Response(json_text(data), media_type="application/json", headers=CACHEABLE)


def site_of(request: Request) -> Site:
    return request.app.state.site


# --- routes --------------------------------------------------------------------------

def _add_routes(app: FastAPI) -> None:
    from .pages import collection, compare, entrance, experiment, files, lineage, runs

    html = {"include_in_schema": False, "response_class": HTMLResponse}

    @app.get("/", **html)
    def entrance_page(request: Request):
        return page(request, "entrance.html", entrance.entrance_view(site_of(request), _links(request, "/")),
                    "/", "/index.json")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        # Browsers ask for this address whatever the page links; answer with the same picture.
        return Response((STATIC / "favicon.svg").read_bytes(), media_type="image/svg+xml", headers=CACHEABLE)

    @app.get("/index.json", tags=["exhibit"], summary="The entrance: headline facts and the timeline of runs")
    def entrance_json(request: Request):
        return twin(entrance.entrance_data(site_of(request)))

    def collection_query(host: str | None = None, dataset: str | None = None, status: str | None = None,
                         since: str | None = None, until: str | None = None,
                         q: Annotated[str | None, Query(max_length=200, description="text in the log")] = None,
                         sort: Literal[collection.SORT_KEYS] = "id",  # type: ignore[valid-type]
                         order: Literal["asc", "desc"] = "asc") -> collection.CollectionQuery:
        return collection.CollectionQuery(host or None, dataset or None, status or None, since or None,
                                          until or None, q or None, sort, order)

    Filters = Annotated[collection.CollectionQuery, Depends(collection_query)]

    @app.get("/experiments.json", tags=["exhibit"], summary="Every experiment, filtered and sorted")
    def collection_json(request: Request, query: Filters):
        return twin(collection.collection_data(site_of(request), query))

    @app.get("/experiments", **html)
    def collection_page(request: Request, query: Filters):
        view = collection.collection_view(site_of(request), query, _links(request, "/experiments"))
        suffix = ("?" + request.url.query) if request.url.query else ""
        return page(request, "collection.html", view, "/experiments", "/experiments.json" + suffix)

    @app.get("/experiments/{eid}.json", tags=["experiments"], summary="One experiment: layers, params, log, results, charts")
    def experiment_json(request: Request, eid: str):
        return twin(experiment.experiment_data(site_of(request), eid))

    @app.get("/experiments/{eid}/charts/{kind}.{fmt}", tags=["experiments"],
             summary="One chart of an experiment as SVG, CSV or JSON")
    def experiment_chart(request: Request, eid: str, kind: str, fmt: ChartFormat):
        site = site_of(request)
        e = experiment.find_experiment(site, eid)
        for chart in site.charts_for(e):
            if experiment.chart_kind(chart.id) == kind:
                return chart_response(chart, fmt)
        raise NotFound(f"Experiment #{e.id} has no chart {kind!r}.")

    @app.get("/experiments/{eid}", **html)
    def experiment_page(request: Request, eid: str):
        e = experiment.find_experiment(site_of(request), eid)
        canonical = f"/experiments/{e.id}"
        if eid != e.id:  # "#120", "layer-params-120.cfg": send the visitor to the permalink
            return RedirectResponse(request.scope.get("root_path", "") + canonical, status_code=308)
        view = experiment.experiment_view(site_of(request), e.id, _links(request, canonical))
        return page(request, "experiment.html", view, canonical, canonical + ".json")

    Ids = Annotated[str, Query(description="experiment ids separated by commas; the first is the baseline",
                               examples=["120,131"], max_length=300)]

    @app.get("/compare.json", tags=["compare"], summary="Experiments side by side (the first is the baseline)")
    def compare_query_json(request: Request, ids: Ids):
        return twin(compare.compare_data(site_of(request), compare.parse_ids(site_of(request), ids)))

    Picked = Annotated[list[str], Query(description="ids ticked in the collection's table (the form)",
                                        max_length=compare.MAX_IDS + 1)]

    @app.get("/compare", **html)
    def compare_query_page(request: Request, ids: Annotated[str, Query(max_length=300)] = "", pick: Picked = []):
        site = site_of(request)
        # The collection's form sends ticked rows as `pick` and typed ids as `ids`.
        parsed = compare.parse_ids(site, ",".join([*pick, ids]))
        canonical = compare_path(parsed)
        view = compare.compare_view(site, parsed, _links(request, canonical))
        return page(request, "compare.html", view, canonical, canonical + ".json")

    @app.get("/compare/{ids}.json", tags=["compare"], summary="The same, at its permalink")
    def compare_json(request: Request, ids: str):
        return twin(compare.compare_data(site_of(request), compare.parse_ids(site_of(request), ids)))

    @app.get("/compare/{ids}/charts/{kind}.{fmt}", tags=["compare"], summary="A compare page's overlaid chart")
    def compare_chart(request: Request, ids: str, kind: str, fmt: ChartFormat):
        charts = compare.compare_charts(site_of(request), compare.parse_ids(site_of(request), ids))
        if kind not in charts:
            raise NotFound(f"This comparison has no chart {kind!r}.")
        return chart_response(charts[kind], fmt)

    @app.get("/compare/{ids}", **html)
    def compare_page(request: Request, ids: str):
        site = site_of(request)
        parsed = compare.parse_ids(site, ids)
        canonical = compare_path(parsed)
        view = compare.compare_view(site, parsed, _links(request, canonical))
        return page(request, "compare.html", view, canonical, canonical + ".json")

    @app.get("/lineage.json", tags=["exhibit"], summary="The family tree: every experiment with its parents")
    def lineage_json(request: Request):
        return twin(lineage.lineage_data(site_of(request)))

    @app.get("/lineage", **html)
    def lineage_page(request: Request):
        view = lineage.lineage_view(site_of(request), _links(request, "/lineage"))
        return page(request, "lineage.html", view, "/lineage", "/lineage.json")

    @app.get("/runs.json", tags=["replays"], summary="Replays kept in the site's database")
    def runs_json(request: Request):
        return twin(runs.runs_data(site_of(request)))

    @app.get("/runs", **html)
    def runs_page(request: Request):
        return page(request, "runs.html", {"x": runs.runs_data(site_of(request)), "title": "Replays"},
                    "/runs", "/runs.json")

    @app.get("/runs/{run_id}.json", tags=["replays"], summary="One replay: options, train and test curves")
    def run_json(request: Request, run_id: str):
        return twin(runs.run_data(site_of(request), run_id))

    @app.get("/runs/{run_id}/filters.png", tags=["replays"], summary="The learned first-layer filters (PNG)")
    def run_filters(request: Request, run_id: str):
        return Response(runs.filters_png(site_of(request), run_id), media_type="image/png", headers=CACHEABLE)

    @app.get("/runs/{run_id}/charts/{kind}.{fmt}", tags=["replays"], summary="A replay's chart")
    def run_chart(request: Request, run_id: str, kind: str, fmt: ChartFormat):
        site = site_of(request)
        for chart in runs.run_charts(site, runs.find_run(site, run_id)):
            if experiment.chart_kind(chart.id) == kind:
                return chart_response(chart, fmt)
        raise NotFound(f"Replay {run_id!r} has no chart {kind!r}.")

    @app.get("/runs/{run_id}", **html)
    def run_page(request: Request, run_id: str):
        canonical = f"/runs/{run_id}"
        view = runs.run_view(site_of(request), run_id, _links(request, canonical))
        return page(request, "run.html", view, canonical, canonical + ".json")

    @app.get("/files.json", tags=["files"], summary="Every file of the archive checkout")
    def files_json(request: Request):
        return twin(files.files_data(site_of(request)))

    @app.get("/files", **html)
    def files_page(request: Request):
        view = {"x": files.files_data(site_of(request)), "title": "Files"}
        return page(request, "files.html", view, "/files", "/files.json")

    @app.get("/files/{path:path}", tags=["files"], summary="One file with line numbers (JSON at PATH.json)",
             response_class=HTMLResponse)
    def file_page(request: Request, path: str):
        site = site_of(request)
        if path not in site.readable_files and path.endswith(".json") and path[:-5] in site.readable_files:
            return twin(files.file_data(site, path[:-5]))
        canonical = "/files/" + path
        view = files.file_view(site, path, _links(request, canonical))
        return page(request, "file.html", view, canonical, canonical + ".json")

    from .pages import glossary

    @app.get("/glossary.json", tags=["exhibit"], summary="Every 2012 term: explanation, origin in the code, "
             "today's name")
    def glossary_json(request: Request):
        return twin(glossary.glossary_data(site_of(request)))

    @app.get("/glossary", **html)
    def glossary_page(request: Request):
        view = glossary.glossary_view(site_of(request), _links(request, "/glossary"))
        return page(request, "glossary.html", view, "/glossary", "/glossary.json")

    _add_annotation_routes(app)


# --- visitor notes and curators ---------------------------------------------------------------
# Nothing below is cached: every answer carries PRIVATE headers and no x-page-cache mark.

MAX_FORM_BYTES = 64 * 1024      # a note is at most 4000 characters; leave room for escaping
LOGIN_FAILURES = 10             # wrong passwords per address ...
LOGIN_WINDOW_S = 600            # ... in this many seconds, then 429 until the window passes


def private_page(request: Request, template: str, context: dict, status: int = 200) -> HTMLResponse:
    links = _links(request, request.url.path)
    html = render_html(template, {"canonical": None, "json_path": None} | context, links,
                       site_of(request).archive.experiments)
    return HTMLResponse(html, status_code=status, headers=PRIVATE)


def private_error(request: Request, status: int, heading: str, message: str,
                  fields: list[dict] | None = None, headers: dict | None = None) -> Response:
    response = error_response(request, status, heading, message, fields)
    response.headers.update(PRIVATE | (headers or {}))
    return response


def see_other(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303, headers=PRIVATE)


def _cookie_options(request: Request, max_age: int) -> dict:
    return {"max_age": max_age, "path": (request.scope.get("root_path", "") or "") + "/", "httponly": True,
            "samesite": "lax", "secure": request.url.scheme == "https"}


def client_address(request: Request) -> str:
    return (request.client.host if request.client else "") or "unknown"


async def read_form(request: Request) -> dict[str, str] | Response:
    """A urlencoded form (what a browser posts), first value of each field; or an error page."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return private_error(request, 415, "That request cannot be answered",
                             "Send the form as application/x-www-form-urlencoded, as a browser does.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return private_error(request, 413, "That note is too long",
                                 f"A form may carry at most {MAX_FORM_BYTES // 1024} KiB.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=40, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return private_error(request, 400, "That request cannot be answered", "The form could not be read.")
    return {name: values[0] for name, values in fields.items()}


def _add_annotation_routes(app: FastAPI) -> None:
    from annotations.accounts import verify_curator
    from annotations.store import MAX_AUTHOR, MAX_BODY, AnnotationInputError, AnnotationNotFound, AnnotationStoreError

    from .pages import curator as curator_pages
    from .pages.annotations import anchor_page, annotation_item
    from .settings import POST_WINDOW_S

    html = {"include_in_schema": False, "response_class": HTMLResponse}
    failed_logins: dict[str, list[float]] = {}
    field_names = {"author": "name", "body": "body", "anchor": "anchor"}  # store's field -> the form's

    def secret(request: Request) -> bytes:
        return site_of(request).site_secret

    def session_of(request: Request) -> auth.Session | None:
        site = site_of(request)
        if site.annotations is None:
            return None
        session = auth.read_session(site.site_secret, request.cookies.get(auth.SESSION_COOKIE))
        if session is None or site.annotations.curator(session.curator) is None:
            return None  # altered, expired, or the account is gone
        if session.issued_ms <= site.annotations.sessions_ended_before(session.curator):
            return None  # logged out since
        return session

    def csrf_token(request: Request) -> str:
        """The visitor's form token: the one in their cookie if this site signed it, else a new one."""
        cookie = request.cookies.get(auth.CSRF_COOKIE)
        if cookie and auth.csrf_token_valid(secret(request), cookie, cookie):
            return cookie
        return auth.new_csrf_token(secret(request))

    def with_csrf_cookie(request: Request, response: Response, token: str) -> Response:
        response.set_cookie(auth.CSRF_COOKIE, token, **_cookie_options(request, auth.CSRF_SECONDS))
        return response

    def csrf_refused(request: Request) -> Response:
        return private_error(request, 403, "This form has expired",
                             "The form's security token is missing or does not match this browser's "
                             "(it expires after a while, and a form posted from another site has none). "
                             "Go back, reload the form, and send it again.")

    # -- a visitor's note ----------------------------------------------------------------------

    def annotate_form(request: Request, anchor: str, token: str, *, values: dict | None = None,
                      errors: list[dict] | None = None, status: int = 200) -> Response:
        site = site_of(request)
        where = curator_pages.place(site, anchor)
        session = session_of(request)
        links = _links(request, request.url.path)
        approved = [annotation_item(site, a, links)
                    for a in site.annotations.approved_for([where["anchor"]]).get(where["anchor"], [])]
        view = {"title": f"A note on {where['anchor']}", "place": where, "csrf": token,
                "keys": curator_pages.key_anchors(site, where["anchor"]),
                "values": {"name": "", "body": ""} | (values or {}), "errors": errors or [],
                "curator": session.curator if session else None, "max_body": MAX_BODY, "max_name": MAX_AUTHOR,
                "approved": approved}
        return with_csrf_cookie(request, private_page(request, "annotate.html", view, status), token)

    @app.get("/annotate", **html)
    def annotate_page(request: Request, anchor: Annotated[str, Query(max_length=300)] = ""):
        site = site_of(request)
        curator_pages.require_store(site)
        canonical = site.canonical_anchor(anchor) if anchor else None
        if canonical is None:
            return private_error(request, 422, "That place is not in the archive",
                                 _anchor_problem(site, anchor), [{"field": "anchor", "message": _anchor_problem(site, anchor)}])
        return annotate_form(request, canonical, csrf_token(request))

    @app.post("/annotate", **html)
    async def annotate_post(request: Request):
        site = site_of(request)
        curator_pages.require_store(site)
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        token = form.get(auth.CSRF_FIELD, "")
        if not auth.csrf_token_valid(secret(request), request.cookies.get(auth.CSRF_COOKIE), token):
            return csrf_refused(request)
        return await run_in_threadpool(_store_note, request, form, token)

    def _store_note(request: Request, form: dict[str, str], token: str) -> Response:
        site = site_of(request)
        store = site.annotations
        session = session_of(request)
        address = client_address(request)
        if session is None and store.count_recent(address, POST_WINDOW_S) >= site.settings.post_limit:
            minutes = POST_WINDOW_S // 60
            return private_error(request, 429, "Please wait a little",
                                 f"This address has sent {site.settings.post_limit} notes in the last {minutes} "
                                 "minutes, which is as many as the site takes. Your text is not lost if you keep "
                                 "the page open: send it again later.", headers={"retry-after": str(POST_WINDOW_S)})
        anchor_text = form.get("anchor", "")
        values = {"name": form.get("name", ""), "body": form.get("body", "")}
        canonical = site.canonical_anchor(anchor_text) if anchor_text else None
        if canonical is None:
            problem = _anchor_problem(site, anchor_text)
            return private_error(request, 422, "That place is not in the archive", problem,
                                 [{"field": "anchor", "message": problem}])
        author = session.curator if session else values["name"]
        try:
            note = store.add(canonical, values["body"], author=author,
                             role="curator" if session else "visitor", address=address)
            if form.get("website", "").strip():
                # The honeypot: a field people never see, that form-filling robots fill in. The note
                # is kept (nothing is thrown away) but hidden, and the robot is answered as anyone.
                store.set_status(note.id, "hidden", actor="honeypot")
        except AnnotationInputError as error:
            field = field_names.get(error.field, error.field)
            return annotate_form(request, canonical, token, values=values, status=422,
                                 errors=[{"field": field, "message": f"{field} {error.message}"}])
        if session is not None:
            return see_other(request, anchor_page(canonical))
        return see_other(request, "/annotate/thanks?anchor=" + quote(canonical, safe="/:"))

    @app.get("/annotate/thanks", **html)
    def annotate_thanks(request: Request, anchor: Annotated[str, Query(max_length=300)] = ""):
        site = site_of(request)
        canonical = site.canonical_anchor(anchor) if anchor else None
        where = curator_pages.place(site, canonical) if canonical else None
        return private_page(request, "thanks.html", {"title": "Thank you", "place": where})

    # -- curators ------------------------------------------------------------------------------

    def login_form(request: Request, token: str, *, name: str = "", problem: str | None = None,
                   status: int = 200) -> Response:
        view = {"title": "Curators", "csrf": token, "name": name, "problem": problem}
        return with_csrf_cookie(request, private_page(request, "login.html", view, status), token)

    @app.get("/curator/login", **html)
    def login_page(request: Request):
        curator_pages.require_store(site_of(request))
        if session_of(request) is not None:
            return see_other(request, "/curator")
        return login_form(request, csrf_token(request))

    @app.post("/curator/login", **html)
    async def login_post(request: Request):
        curator_pages.require_store(site_of(request))
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        token = form.get(auth.CSRF_FIELD, "")
        if not auth.csrf_token_valid(secret(request), request.cookies.get(auth.CSRF_COOKIE), token):
            return csrf_refused(request)
        address = client_address(request)
        now = time.monotonic()
        if len(failed_logins) > 10_000:  # bounded: forget the oldest addresses' failures
            for stale in list(failed_logins)[:5_000]:
                del failed_logins[stale]
        recent = [t for t in failed_logins.pop(address, []) if now - t < LOGIN_WINDOW_S]
        failed_logins[address] = recent
        if len(recent) >= LOGIN_FAILURES:
            return private_error(request, 429, "Please wait a little",
                                 "Too many wrong passwords from this address; try again in a few minutes.",
                                 headers={"retry-after": str(LOGIN_WINDOW_S)})
        name, password = form.get("name", "").strip(), form.get("password", "")
        # scrypt takes tens of milliseconds: off the event loop.
        if not await run_in_threadpool(verify_curator, site_of(request).annotations, name, password):
            recent.append(now)
            return login_form(request, token, name=name, status=403,
                              problem="That name and password do not match a curator of this site.")
        session = auth.new_session(secret(request), name)
        response = see_other(request, "/curator")
        response.set_cookie(auth.SESSION_COOKIE, session.cookie, **_cookie_options(request, auth.SESSION_SECONDS))
        return response

    def curator_or_refusal(request: Request, form: dict | None = None) -> auth.Session | Response:
        """The session of a logged-in curator (for a POST: with this session's form token)."""
        curator_pages.require_store(site_of(request))
        session = session_of(request)
        if form is None:
            if session is None:
                if request.url.path.endswith(".json"):
                    return private_error(request, 403, "For curators only", "Log in at /curator/login first.")
                return see_other(request, "/curator/login")
            return session
        if session is None:
            return private_error(request, 403, "For curators only",
                                 "Only a curator who is logged in can do this.")
        if not auth.session_form_token_valid(secret(request), session, form.get(auth.CSRF_FIELD)):
            return csrf_refused(request)
        return session

    async def curator_post(request: Request) -> tuple[dict, auth.Session] | Response:
        """A curator's form and session, or the refusal (bad form, no session, bad token)."""
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        session = curator_or_refusal(request, form)
        return session if isinstance(session, Response) else (form, session)

    @app.post("/curator/logout", **html)
    async def logout(request: Request):
        posted = await curator_post(request)
        if isinstance(posted, Response):
            return posted
        _, session = posted
        # Every session of this curator issued until now ends, copies of the cookie included.
        site_of(request).annotations.end_sessions(session.curator, int(time.time() * 1000))
        response = see_other(request, "/")
        options = _cookie_options(request, 0)
        response.delete_cookie(auth.SESSION_COOKIE, path=options["path"], secure=options["secure"],
                               httponly=True, samesite="lax")
        return response

    @app.get("/curator", **html)
    def curator_page(request: Request):
        session = curator_or_refusal(request)
        if isinstance(session, Response):
            return session
        site = site_of(request)
        data = curator_pages.curator_data(site, session.curator)
        view = {"title": "Curator's desk", "d": data, "token": auth.session_form_token(secret(request), session),
                "max_body": MAX_BODY}
        return private_page(request, "curator.html", view)

    @app.get("/curator.json", tags=["curators"], summary="The curator's queue (logged-in curators only)")
    def curator_json(request: Request):
        session = curator_or_refusal(request)
        if isinstance(session, Response):
            return session
        data = curator_pages.curator_data(site_of(request), session.curator)
        return Response(json_text(data), media_type="application/json", headers=PRIVATE)

    @app.post("/curator/annotations/{annotation_id}/status", **html)
    async def set_status(request: Request, annotation_id: int):
        posted = await curator_post(request)
        if isinstance(posted, Response):
            return posted
        form, session = posted
        try:
            await run_in_threadpool(site_of(request).annotations.set_status, annotation_id,
                                    form.get("status", ""), actor=session.curator)
        except AnnotationInputError as error:
            return private_error(request, 422, "That request cannot be answered", str(error),
                                 [{"field": error.field, "message": error.message}])
        return see_other(request, f"/curator#annotation-{annotation_id}")

    @app.post("/curator/annotations/{annotation_id}/edit", **html)
    async def edit(request: Request, annotation_id: int):
        posted = await curator_post(request)
        if isinstance(posted, Response):
            return posted
        form, session = posted
        try:
            await run_in_threadpool(site_of(request).annotations.edit, annotation_id, form.get("body", ""),
                                    editor=session.curator)
        except AnnotationInputError as error:
            return private_error(request, 422, "That edit cannot be saved", str(error),
                                 [{"field": error.field, "message": error.message}])
        return see_other(request, f"/curator#annotation-{annotation_id}")

    @app.exception_handler(AnnotationNotFound)
    async def no_annotation(request: Request, error: AnnotationNotFound):
        return private_error(request, 404, "Not in the archive", f"There is no annotation {error.annotation_id}.")

    @app.exception_handler(AnnotationStoreError)
    async def annotation_store_error(request: Request, error: AnnotationStoreError):
        log.error("annotations database: %s", error)
        return private_error(request, 503, "Notes cannot be read or written just now",
                             "The database of notes could not be used; the rest of the exhibit is unaffected.")


def _anchor_problem(site, anchor: str) -> str:
    from annotations.anchors import AnchorError, resolve

    if not anchor:
        return "anchor is missing: say which experiment, layer, key or file line the note is about"
    try:
        resolve(anchor, site.archive)
    except AnchorError as error:
        return f"anchor: {error}"
    return "anchor: not a place in the release"


def chart_response(chart, fmt: str) -> Response:
    from .charts import chart_csv, chart_json, render_svg

    if fmt == "svg":
        return Response(render_svg(chart), media_type="image/svg+xml", headers=CACHEABLE)
    if fmt == "csv":
        return Response(chart_csv(chart), media_type="text/csv; charset=utf-8", headers=CACHEABLE)
    return twin(chart_json(chart))


# --- errors ---------------------------------------------------------------------------

def _wants_json(request: Request) -> bool:
    path = request.url.path
    if path.endswith((".json", ".csv", ".svg")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: Request, status: int, heading: str, message: str,
                   fields: list[dict] | None = None) -> Response:
    if _wants_json(request):
        body = {"error": heading, "message": message, "status": status}
        if fields:
            body["fields"] = fields
        return Response(json_text(body), status_code=status, media_type="application/json")
    links = Links(current=request.url.path, root_path=request.scope.get("root_path", ""))
    html = render_html("error.html", {"title": heading, "status": status, "message": message,
                                      "fields": fields or [], "canonical": None, "json_path": None}, links)
    return HTMLResponse(html, status_code=status)


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return error_response(request, 404, "Not in the archive", str(error))

    @app.exception_handler(BadQuery)
    async def bad_query(request: Request, error: BadQuery):
        return error_response(request, 422, "That request cannot be answered", error.message,
                              [{"field": error.field, "message": error.message}])

    from replay.store import StoreError  # standard library only

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError):
        log.error("runs database: %s", error)  # the file's path stays in the server's log
        return error_response(request, 503, "The replays cannot be read",
                              "The database of replays could not be read; the rest of the exhibit is unaffected.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path")),
                   "message": e.get("msg", "invalid")} for e in error.errors()]
        return error_response(request, 422, "That request cannot be answered",
                              "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 404:
            return error_response(request, 404, "Not in the archive",
                                  f"Nothing is kept at {request.url.path!r}.")
        return error_response(request, error.status_code, "That request cannot be answered", str(error.detail))

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception):
        # The visitor sees an apology, never a traceback; the log keeps the details.
        log.exception("error while answering %s", request.url.path)
        return error_response(request, 500, "Something went wrong",
                              "The exhibit could not show this page. The error has been logged.")
