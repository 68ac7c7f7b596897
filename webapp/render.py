"""One Jinja2 environment (autoescaping on) and the two renderings of every page:
HTML from a template, JSON from the same data (the page's JSON twin)."""
from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Container

import jinja2
from markupsafe import Markup

from .links import Links

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value from a file or a visitor is text, never markup
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the tests instead of vanishing
    )
    env.filters.update(pct=pct, date=date_text, number=number_text, value=value_text)
    return env


def render_html(template: str, context: dict, links: Links, known_ids: Container[str] = ()) -> str:
    """``context`` is the page's data plus its pictures; templates reach links only through ``href``.
    ``known_ids``: the experiments that have a page (only those are linked)."""
    page = environment().get_template(template)
    return page.render(**context, href=links.href, asset=links.asset, links=links, svg=Markup,
                       known_ids=known_ids)


_VIEWBOX = re.compile(r'viewBox="0 0 ([0-9.]+) ([0-9.]+)" width="100%"')


def natural_size(svg_text: str) -> str:
    """Draw a wide diagram (the timeline, the family tree) at its own size inside a scrolling box
    instead of shrinking its text to fit the page."""
    return _VIEWBOX.sub(lambda m: f'viewBox="0 0 {m[1]} {m[2]}" width="{m[1]}"', svg_text, count=1)


def json_text(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1, default=_json_default)


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# --- filters -------------------------------------------------------------------

def pct(value, digits: int = 1) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def date_text(value, with_time: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def number_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def value_text(value) -> str:
    """A parameter value as the cfg file would show it (lists comma-joined, schedules canonical)."""
    if value is None:
        return ""
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
