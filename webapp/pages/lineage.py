"""/lineage: the family tree built from the log's "this is like #N" sentences."""
from __future__ import annotations

from ..links import Links
from ..render import natural_size
from ..site import Site


def lineage_data(site: Site) -> dict:
    archive = site.archive
    nodes = [{"id": e.id, "parents": list(e.parents), "children": list(e.children),
              "start": e.start.isoformat() if e.start else None, "dataset": e.dataset.label(),
              "top5": e.final_result.top5 if e.final_result else None}
             for e in archive.sorted_experiments()]
    missing = sorted({p for e in archive.experiments.values() for p in e.parents if p not in archive.experiments})
    roots = [n["id"] for n in nodes if not any(p in archive.experiments for p in n["parents"])]
    return {"experiments": nodes, "roots": roots, "missing_parents": missing,
            "edges": sum(len(n["parents"]) for n in nodes)}


def lineage_view(site: Site, links: Links) -> dict:
    from ..diagrams import lineage_svg

    return {"x": lineage_data(site), "title": "Lineage",
            "tree_svg": natural_size(lineage_svg(site.archive, href=links.href, id_prefix="lineage"))}
