"""/experiments: the collection — every experiment in a sortable, filterable table.

Filters and sort orders are query parameters, so the page works without JavaScript and
every view has a link."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from urllib.parse import urlencode

from archive.query import filter_experiments

from ..errors import BadQuery
from ..site import Site

SORT_KEYS = ("id", "start", "host", "status", "dataset", "epochs", "top5")


@dataclass(frozen=True, slots=True)
class CollectionQuery:
    host: str | None = None
    dataset: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None
    q: str | None = None
    sort: str = "id"
    order: str = "asc"

    def validated(self) -> CollectionQuery:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise BadQuery(name, f"{value!r} is not a date (YYYY-MM-DD)") from None
        if self.sort not in SORT_KEYS:
            raise BadQuery("sort", f"sort by one of {', '.join(SORT_KEYS)}")
        if self.order not in ("asc", "desc"):
            raise BadQuery("order", "order is asc or desc")
        return self

    def active(self) -> dict[str, str]:
        """The filters in use (for links that keep them)."""
        return {k: v for k, v in asdict(self).items() if v and not (k, v) in (("sort", "id"), ("order", "asc"))}


def _sort_key(name: str):
    def key(row: dict):
        value = {"id": None, "start": row["start"], "host": ",".join(row["hosts"]), "status": row["status"],
                 "dataset": row["dataset"], "epochs": row["last_epoch"], "top5": row["top5"]}[name]
        return (value is None, value if value is not None else 0)
    return key


def collection_data(site: Site, query: CollectionQuery) -> dict:
    query = query.validated()
    experiments = filter_experiments(site.archive, host=query.host, since=query.since, until=query.until,
                                     status=query.status, dataset=query.dataset, text=query.q)
    rows = [e.summary_json() for e in experiments]
    if query.sort != "id":  # archive order is id order already
        rows.sort(key=_sort_key(query.sort))
    if query.order == "desc":
        rows.reverse()
    return {
        "query": asdict(query),
        "count": len(rows),
        "total": len(site.archive.experiments),
        "experiments": rows,
        "facets": {"hosts": site.hosts, "statuses": site.statuses, "datasets": site.dataset_labels},
    }


def collection_view(site: Site, query: CollectionQuery, links) -> dict:
    data = collection_data(site, query)
    query = query.validated()
    sort_links = {}
    for key in SORT_KEYS:
        # A column's link sorts by it; clicked again it reverses the order. Filters are kept.
        order = "desc" if query.sort == key and query.order == "asc" else "asc"
        params = {k: v for k, v in query.active().items() if k not in ("sort", "order")}
        params.update({"sort": key, "order": order} if (key, order) != ("id", "asc") else {})
        sort_links[key] = "/experiments" + ("?" + urlencode(params) if params else "")
    return {"x": data, "title": "The collection", "query": query, "sort_links": sort_links}
