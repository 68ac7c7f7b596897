"""The two Markdown renderers: XSS attempts come out inert, safe links survive."""
from __future__ import annotations

import html
import re
import urllib.parse
from html.parser import HTMLParser

import pytest

from annotations.markdown import VISITOR_LINK_REL, render_curated, render_visitor, safe_href

RENDERERS = {"visitor": render_visitor, "curated": render_curated}


class Collect(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags_of(output: str) -> list[tuple[str, dict]]:
    parser = Collect()
    parser.feed(output)
    parser.close()
    return parser.tags


def dangerous_url(url: str) -> bool:
    """Independent of safe_href: would a browser run or load this as a script/data/file URL?"""
    probe = url
    for _ in range(3):
        probe = urllib.parse.unquote(html.unescape(probe))
    probe = re.sub(r"[\x00-\x20\x7f\s]", "", probe).lower()
    return probe.startswith(("javascript:", "vbscript:", "data:", "file:", "livescript:"))


XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">raw</a>',
    "<div onclick=alert(1)>click</div>",
    "<svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](<java\tscript:alert(1)>)",
    "[a](<java\nscript:alert(1)>)",
    "[a](java&#x09;script:alert(1))",
    "[a](&#106;avascript:alert(1))",
    "[a](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[a](javascript&colon;alert(1))",
    "[a](%6Aavascript:alert(1))",
    "[a](java%09script:alert(1))",
    "[a](java%2509script:alert(1))",
    "[a]( javascript:alert(1))",
    "[a](\x01javascript:alert(1))",
    "[a](vbscript:msgbox(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[a](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    '[ref][r]\n\n[r]: <java&#9;script:alert(1)> "title"',
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](http://evil.example/pixel.png)",
    '![x" onerror="alert(1)](http://evil.example/p.png)',
    '[x](http://a "\\"><script>alert(1)</script>")',
    "[x](http://a 'x\" onmouseover=\"alert(1)')",
    '[x](http://a" onmouseover="alert(1))',
    '[<img src=x onerror=alert(1)>](http://example.org)',
    "[x](http://example.org)<script>alert(1)</script>",
    "```html\n<script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "| a | b |\n|---|---|\n| <script>alert(1)</script> | [c](javascript:alert(1)) |",
    "<style>body{display:none}</style><object data=x></object><embed src=x>",
    "<!-- <script>alert(1)</script> -->",
]


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("attack", XSS)
def test_attacks_come_out_inert(renderer, attack):
    output = RENDERERS[renderer](attack)
    for tag, attrs in tags_of(output):
        assert tag not in ("script", "iframe", "object", "embed", "style", "svg", "math", "form", "base"), output
        assert not [name for name in attrs if name.lower().startswith("on")], output
        for name in ("href", "src", "action", "formaction", "xlink:href"):
            if attrs.get(name) is not None:
                assert not dangerous_url(attrs[name]), (name, attrs[name], output)
        assert "style" not in attrs, output
        if renderer == "visitor":
            assert tag != "img", output
        if tag == "a" and renderer == "visitor":
            assert attrs.get("rel") == VISITOR_LINK_REL, output


@pytest.mark.parametrize("renderer", RENDERERS)
def test_script_tags_are_shown_as_text(renderer):
    output = RENDERERS[renderer]("Look: <script>alert(1)</script>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in output
    assert not [tag for tag, _ in tags_of(output) if tag == "script"]


def test_a_refused_link_stays_readable_as_text():
    output = render_visitor("[click me](javascript:alert(1))")
    assert "<a" not in output
    assert "click me" in output and "javascript:alert(1)" in output


def test_html_in_a_link_title_stays_inside_the_attribute():
    output = render_visitor('[x](http://a "\\"><script>alert(1)</script>")')
    assert [tag for tag, _ in tags_of(output)] == ["p", "a"]
    attrs = tags_of(output)[1][1]
    assert attrs["href"] == "http://a"
    assert attrs["title"] == '"><script>alert(1)</script>'


SAFE_LINKS = [
    ("[a](http://example.org/x?y=1#z)", "http://example.org/x?y=1#z"),
    ("[a](https://example.org)", "https://example.org"),
    ("[a](HTTPS://example.org)", "HTTPS://example.org"),
    ("[a](mailto:curator@example.org)", "mailto:curator@example.org"),
    ("[a](/experiments/120)", "/experiments/120"),
    ("[a](../layers/layer-params-120.cfg)", "../layers/layer-params-120.cfg"),
    ("[a](layers/layer-params-120.cfg:167)", "layers/layer-params-120.cfg:167"),
    ("[a](#conv1a)", "#conv1a"),
    ("[a](?page=2)", "?page=2"),
    ("<https://example.org/a>", "https://example.org/a"),
    ("<curator@example.org>", "mailto:curator@example.org"),
    ("[a][r]\n\n[r]: https://example.org/ref", "https://example.org/ref"),
]


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("source, href", SAFE_LINKS)
def test_safe_links_survive(renderer, source, href):
    links = [attrs for tag, attrs in tags_of(RENDERERS[renderer](source)) if tag == "a"]
    assert [link["href"] for link in links] == [href]


def test_visitor_links_are_nofollow_ugc_noopener():
    output = render_visitor("[a](https://example.org) and [b](/experiments/120) and <https://x.example>")
    rels = [attrs.get("rel") for tag, attrs in tags_of(output) if tag == "a"]
    assert rels == [VISITOR_LINK_REL] * 3


def test_visitor_images_become_links_and_curated_images_stay_images():
    source = '![the filters](https://example.org/f.png "conv1 filters")'
    visitor = tags_of(render_visitor(source))[1:]  # after the <p>
    assert visitor == [("a", {"href": "https://example.org/f.png", "rel": VISITOR_LINK_REL, "title": "conv1 filters"})]
    assert "the filters</a>" in render_visitor(source)
    curated = tags_of(render_curated(source))[1:]
    assert curated == [("img", {"src": "https://example.org/f.png", "alt": "the filters", "title": "conv1 filters"})]


def test_an_image_with_a_refused_address_leaves_only_its_alt_text():
    for render in RENDERERS.values():
        output = render("![alt words](javascript:alert(1))")
        assert not tags_of(output)[1:]  # only the <p>
        assert "alt words" in output


def test_curated_notes_have_tables_and_leave_site_links_bare():
    output = render_curated("| key | meaning |\n|---|---|\n| epsW | learning rate |\n\n[see](/glossary#epsW)")
    tags = tags_of(output)
    assert ("table", {}) in tags and ("td", {}) in tags
    assert ("a", {"href": "/glossary#epsW"}) in tags
    assert ("a", {"href": "https://x.example", "rel": "noopener"}) in tags_of(render_curated("<https://x.example>"))


def test_visitor_markdown_keeps_the_common_formatting():
    output = render_visitor("# Title\n\n*em* **strong** `code`\n\n- item\n\n> quote")
    assert [tag for tag, _ in tags_of(output)] == ["h1", "p", "em", "strong", "code", "ul", "li", "blockquote", "p"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_rendering_is_deterministic(renderer):
    text = "\n\n".join(XSS + [source for source, _ in SAFE_LINKS])
    assert RENDERERS[renderer](text) == RENDERERS[renderer](text)


@pytest.mark.parametrize("url, expected", [
    ("http://example.org", "http://example.org"),
    ("https://example.org/a b", "https://example.org/a b"),   # harmless: browsers encode it
    ("https://example.org/\x01", None),                      # a raw control never comes out of markdown-it
    ("mailto:a@example.org", "mailto:a@example.org"),
    ("/a/b", "/a/b"),
    ("#frag", "#frag"),
    ("//example.org/x", "//example.org/x"),
    ("", ""),
    ("javascript:alert(1)", None),
    ("  javascript:alert(1)", None),
    ("java\tscript:alert(1)", None),
    ("java%09script:alert(1)", None),
    ("&#106;avascript:alert(1)", None),
    ("javascript&#58;alert(1)", None),
    ("vbscript:x", None),
    ("data:text/html,x", None),
    ("file:///etc/passwd", None),
    ("ftp://example.org", None),
    ("jav\u0430script:alert(1)", None),         # Cyrillic a: no scheme a browser reads, still refused
    ("x" * 3000, None),
])
def test_safe_href(url, expected):
    assert safe_href(url) == expected
