"""A small HTML checker (stdlib html.parser) shared by the page, validity and export tests.

It reports what a browser would silently repair: unbalanced tags, self-closed HTML
elements, duplicate ids, references (label for=, aria-labelledby) to ids that are not
on the page; and it collects every link (href/src) and the page's visible text."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

# HTML elements that have no end tag (WHATWG "void elements").
VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta source track wbr".split())
# Attributes that hold a URL the page loads or links to.
LINK_ATTRIBUTES = frozenset({"href", "src"})


@dataclass
class PageReport:
    problems: list[str] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)          # id -> how many times it occurs
    links: list[tuple[str, str]] = field(default_factory=list)  # (tag, url) in document order
    references: list[tuple[str, str]] = field(default_factory=list)  # (what, id) that must exist here
    text: list[str] = field(default_factory=list)
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)

    @property
    def duplicate_ids(self) -> list[str]:
        return sorted(i for i, n in self.ids.items() if n > 1)

    def all_problems(self) -> list[str]:
        out = list(self.problems)
        out += [f"duplicate id {i!r} ({self.ids[i]} times)" for i in self.duplicate_ids]
        out += [f"{what} refers to id {i!r}, which is not on the page"
                for what, i in self.references if i not in self.ids]
        return out

    def count(self, tag: str, css_class: str | None = None) -> int:
        """How many <tag> elements (with class css_class among their classes)."""
        return sum(1 for t, attrs in self.tags if t == tag
                   and (css_class is None or css_class in (attrs.get("class") or "").split()))


class PageChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.report = PageReport()
        self.stack: list[tuple[str, int]] = []  # (tag, line) of open elements
        self.svg_depth = 0  # inside inline <svg> the content is XML: <path/> closes itself

    def _where(self) -> str:
        return f"line {self.getpos()[0]}"

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.report.tags.append((tag, values))
        if len(values) != len(attrs):
            self.report.problems.append(f"<{tag}> repeats an attribute at {self._where()}")
        element_id = values.get("id")
        if element_id is not None:
            self.report.ids[element_id] = self.report.ids.get(element_id, 0) + 1
        for name in LINK_ATTRIBUTES & values.keys():
            if values[name] is not None:
                self.report.links.append((tag, values[name]))
        if tag == "label" and values.get("for"):
            self.report.references.append(("label for=", values["for"]))
        for name in ("aria-labelledby", "aria-describedby"):
            for ref in (values.get(name) or "").split():
                self.report.references.append((name, ref))

    def handle_starttag(self, tag, attrs):
        self._attributes(tag, attrs)
        if tag == "svg":
            self.svg_depth += 1
        if tag in VOID_ELEMENTS and not self.svg_depth:
            return
        self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag, attrs):
        self._attributes(tag, attrs)
        if not self.svg_depth and tag not in VOID_ELEMENTS:
            # In HTML "<div/>" is an open <div>: the browser does not close it.
            self.report.problems.append(f"self-closed HTML element <{tag}/> at {self._where()}")

    def handle_endtag(self, tag):
        if tag in VOID_ELEMENTS and not self.svg_depth:
            self.report.problems.append(f"end tag </{tag}> of a void element at {self._where()}")
            return
        if not self.stack:
            self.report.problems.append(f"</{tag}> with nothing open at {self._where()}")
            return
        open_tag, line = self.stack[-1]
        if open_tag != tag:
            self.report.problems.append(f"</{tag}> at {self._where()} closes <{open_tag}> opened at line {line}")
            # Recover like a lenient reader: pop to the matching tag if there is one.
            if any(t == tag for t, _ in self.stack):
                while self.stack and self.stack[-1][0] != tag:
                    self.stack.pop()
            else:
                return
        self.stack.pop()
        if tag == "svg":
            self.svg_depth -= 1

    def handle_data(self, data):
        if data.strip():
            self.report.text.append(data)

    def close(self):
        super().close()
        for tag, line in self.stack:
            self.report.problems.append(f"<{tag}> opened at line {line} is never closed")


def check_page(html: str) -> PageReport:
    checker = PageChecker()
    checker.feed(html)
    checker.close()
    return checker.report


def is_site_relative(url: str) -> bool:
    """A link into this site (not another site, not mail, not a data: URL)."""
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith("//")


def split_fragment(url: str) -> tuple[str, str]:
    if "#" in url:
        path, fragment = url.split("#", 1)
        return path, fragment
    return url, ""
