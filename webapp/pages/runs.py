"""/runs and /runs/{id}: replays of archived experiments, kept in the site's database
(replay/store.py), with their curves beside what 2012 logged and their learned filters."""
from __future__ import annotations

from ..errors import NotFound
from ..links import Links
from ..site import Site
from .experiment import chart_block, find_experiment


def runs_data(site: Site) -> dict:
    runs = site.runs.runs() if site.runs is not None else []
    return {"database": str(site.settings.db) if site.settings.db else None,
            "runs": [{k: r[k] for k in ("id", "experiment", "backend", "status", "data", "synthetic", "started",
                                       "ended")} for r in runs]}


def find_run(site: Site, run_id: str) -> dict:
    from replay.store import StoreError

    if site.runs is None:
        raise NotFound("This site was started without a runs database (serve --db).")
    try:
        return site.runs.run(run_id)
    except StoreError as error:
        if "no run" in str(error):
            raise NotFound(f"There is no replay {run_id!r} in this site's database.") from None
        raise


def run_data(site: Site, run_id: str) -> dict:
    run = find_run(site, run_id)
    run["has_checkpoint"] = site.runs.checkpoint_path(run["id"]).is_file()
    return run


def run_charts(site: Site, run: dict) -> list:
    from ..curves import experiment_charts

    return experiment_charts(find_experiment(site, run["experiment"]), [run])


def run_view(site: Site, run_id: str, links: Links) -> dict:
    run = run_data(site, run_id)
    page = f"/runs/{run['id']}"
    return {"r": run, "title": f"Replay {run['id']} of #{run['experiment']}",
            "charts": [chart_block(chart, page, links) for chart in run_charts(site, run)]}


def filters_png(site: Site, run_id: str) -> bytes:
    """The learned first-layer filters, one panel per logical GPU (the paper's Figure 3 look)."""
    from replay.checkpoint import CheckpointError, load_run
    from replay.filters import filters_png as draw

    run = find_run(site, run_id)
    try:
        plan, parts, _ = load_run(site.runs.checkpoint_path(run["id"]), site.archive, run["experiment"],
                                  as_written=bool(run["options"].get("as_written")))
    except CheckpointError as error:
        raise NotFound(f"Replay {run['id']} has no readable checkpoint: {error}") from None
    weights = parts["weights"]
    try:
        return draw(weights, plan)
    except ValueError as error:
        raise NotFound(f"Replay {run['id']}: {error}") from None
