"""The museum site: ``create_app(settings)`` builds the FastAPI app.

The archive is parsed once, here, before the first request. Every page is a data
function (webapp/pages) rendered twice: HTML through Jinja2 and its JSON twin at the
same address plus ``.json``. Routes stay thin; the page cache (webapp/cache.py) keeps
rendered pages, since nothing changes while the server runs.
"""
# (no `from __future__ import annotations`: FastAPI reads the route signatures, local aliases included)

import logging
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .cache import PageCache
from .errors import BadQuery, NotFound
from .links import Links, compare_path
from .render import STATIC, json_text, render_html
from .settings import Settings
from .site import Site

log = logging.getLogger("alexnet_archive.web")

CACHEABLE = {"x-page-cache": "store", "cache-control": "public, max-age=300"}
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
    return app


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
