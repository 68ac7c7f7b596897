"""`alexnet-archive export-site DIR`: the whole exhibit as static files.

Every page is rendered by the same view functions as the live site, with links made
relative (webapp/links.py), so the export opens from disk or from any static web
server and outlives any server. Comparisons are exported for every experiment beside
each parent it names ("this is like #N"); other pairs need the live site.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .links import Links, compare_path, static_file
from .render import STATIC, json_text, render_html
from .site import Site


@dataclass(frozen=True, slots=True)
class ExportReport:
    directory: Path
    pages: int
    files: int
    bytes: int


def planned_pages(site: Site) -> list[tuple[str, Callable[[Links], str | bytes]]]:
    """(canonical path, render) for every file of the export, in a stable order."""
    from .charts import chart_csv, chart_json, render_svg
    from .pages import collection, compare, entrance, experiment, files, glossary, lineage, runs

    def html(template: str, view: Callable[[Links], dict], json_path: str | None):
        def render(links: Links) -> str:
            return render_html(template, view(links) | {"canonical": links.current, "json_path": json_path}, links,
                               site.archive.experiments)
        return render

    def data(producer: Callable[[], object]):
        return lambda links: json_text(producer())

    def chart_files(base: str, charts) -> list:
        out = []
        for chart in charts:
            kind = experiment.chart_kind(chart.id)
            out += [(f"{base}/charts/{kind}.svg", lambda links, c=chart: render_svg(c, href=links.href)),
                    (f"{base}/charts/{kind}.csv", lambda links, c=chart: chart_csv(c)),
                    (f"{base}/charts/{kind}.json", lambda links, c=chart: json_text(chart_json(c)))]
        return out

    query = collection.CollectionQuery()
    plan: list[tuple[str, Callable[[Links], str | bytes]]] = [
        ("/", html("entrance.html", lambda links: entrance.entrance_view(site, links), "/index.json")),
        ("/index.json", data(lambda: entrance.entrance_data(site))),
        ("/experiments", html("collection.html", lambda links: collection.collection_view(site, query, links),
                              "/experiments.json")),
        ("/experiments.json", data(lambda: collection.collection_data(site, query))),
        ("/lineage", html("lineage.html", lambda links: lineage.lineage_view(site, links), "/lineage.json")),
        ("/lineage.json", data(lambda: lineage.lineage_data(site))),
        ("/files", html("files.html", lambda links: {"x": files.files_data(site), "title": "Files"}, "/files.json")),
        ("/files.json", data(lambda: files.files_data(site))),
        ("/glossary", html("glossary.html", lambda links: glossary.glossary_view(site, links), "/glossary.json")),
        ("/glossary.json", data(lambda: glossary.glossary_data(site))),
    ]
    for e in site.archive.sorted_experiments():
        path = f"/experiments/{e.id}"
        plan.append((path, html("experiment.html", lambda links, i=e.id: experiment.experiment_view(site, i, links),
                                path + ".json")))
        plan.append((path + ".json", data(lambda i=e.id: experiment.experiment_data(site, i))))
        plan += chart_files(path, site.charts_for(e))
    for ids in exported_comparisons(site):
        path = compare_path(ids)
        plan.append((path, html("compare.html", lambda links, i=ids: compare.compare_view(site, i, links),
                                path + ".json")))
        plan.append((path + ".json", data(lambda i=ids: compare.compare_data(site, i))))
        plan += chart_files(path, compare.compare_charts(site, ids).values())
    plan.append(("/runs", html("runs.html", lambda links: {"x": runs.runs_data(site), "title": "Replays"},
                                "/runs.json")))
    plan.append(("/runs.json", data(lambda: runs.runs_data(site))))
    for run in (site.runs.runs() if site.runs is not None else []):
        path = f"/runs/{run['id']}"
        plan.append((path, html("run.html", lambda links, i=run["id"]: runs.run_view(site, i, links), path + ".json")))
        plan.append((path + ".json", data(lambda i=run["id"]: runs.run_data(site, i))))
        plan += chart_files(path, runs.run_charts(site, runs.find_run(site, run["id"])))
        if site.runs.checkpoint_path(run["id"]).is_file():
            plan.append((path + "/filters.png", lambda links, i=run["id"]: runs.filters_png(site, i)))
    for name in site.readable_files:
        path = "/files/" + name
        plan.append((path, html("file.html", lambda links, n=name: files.file_view(site, n, links), path + ".json")))
        plan.append((path + ".json", data(lambda n=name: files.file_data(site, n))))
    return plan


def exported_comparisons(site: Site) -> list[list[str]]:
    """Each experiment beside each parent it names, parent first (the baseline)."""
    pairs = []
    for e in site.archive.sorted_experiments():
        pairs += [[parent, e.id] for parent in e.parents if parent in site.archive.experiments]
    return pairs


def export_site(site: Site, directory: Path, *, progress: bool = True) -> ExportReport:
    from archive.locate import ProgressBar

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plan = planned_pages(site)
    bar = ProgressBar(len(plan), "export", sys.stderr, unit="pages") if progress else None
    written = total = 0
    for canonical, render in plan:
        text = render(Links(current=canonical, static=True))
        target = directory / static_file(canonical)
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = text if isinstance(text, bytes) else text.encode("utf-8")  # pictures come as bytes
        target.write_bytes(raw)
        written += 1
        total += len(raw)
        if bar:
            bar.update(1)
    not_found = render_html("error.html", {"title": "Not in the archive", "status": 404,
                                           "message": "Nothing is kept at this address.", "fields": [],
                                           "canonical": None, "json_path": None},
                            Links(current="/404", static=True))
    (directory / "404.html").write_text(not_found, encoding="utf-8")
    assets = directory / "static"
    shutil.copytree(STATIC, assets, dirs_exist_ok=True)
    asset_count = sum(1 for p in assets.rglob("*") if p.is_file())
    if bar:
        bar.close()
    return ExportReport(directory, written + 1, written + 1 + asset_count, total)
