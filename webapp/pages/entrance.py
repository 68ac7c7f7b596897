"""/: the exhibit's entrance — the timeline of runs across the machines, and headline facts."""
from __future__ import annotations

from archive.query import archive_stats

from ..links import Links
from ..site import Site


def entrance_data(site: Site) -> dict:
    archive = site.archive
    stats = archive_stats(archive)
    experiments = archive.sorted_experiments()
    dated = [e for e in experiments if e.start]
    # "Best" only means something within one data set: the competition's, ILSVRC-2012.
    scored = [e for e in experiments if e.final_result and e.final_result.top5 is not None
              and e.dataset.version == "ILSVRC-2012"]
    best = min(scored, key=lambda e: e.final_result.top5) if scored else None
    most_children = max(experiments, key=lambda e: len(e.children)) if experiments else None
    runs = site.timeline
    return {
        "facts": {
            "experiments": stats["experiments"], "runs": stats["runs"], "layer_files": stats["layer_files"],
            "layers": stats["layers"]["total"], "hosts": site.hosts,
            "first_start": min(e.start for e in dated).isoformat() if dated else None,
            "last_start": max(e.start for e in dated).isoformat() if dated else None,
            "log_lines": stats["log"]["comment_lines"], "typed_share": stats["log"]["typed_share"],
            "best_top5": {"id": best.id, "top5": best.final_result.top5} if best else None,
            "most_children": {"id": most_children.id, "children": len(most_children.children)}
            if most_children else None,
            "machines": stats["machines"],
        },
        "timeline": [_run_json(run) for run in runs],
    }


def _run_json(run) -> dict:
    from dataclasses import asdict

    data = asdict(run)
    for key in ("start", "end"):
        data[key] = data[key].isoformat()
    return data


def entrance_view(site: Site, links: Links) -> dict:
    from ..diagrams import timeline_svg

    return {"x": entrance_data(site), "title": "AlexNet, summer 2012",
            "timeline_svg": timeline_svg(site.timeline, href=links.href)}
