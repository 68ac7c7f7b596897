"""Markdown to HTML for annotations: one renderer for visitors, one for curated notes.

Both keep raw HTML off (markdown-it escapes it), so the only way to put markup on a page is
Markdown itself; what remains dangerous there is a link or image address, and every one of
those goes through `safe_href`. Visitors get less: no embedded images (a remote image would
let anyone make every reader's browser fetch from their server) and every link marked
rel="nofollow ugc noopener" (user-generated, no search-engine credit, no window.opener).
"""
from __future__ import annotations

import html
import re
import urllib.parse

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
VISITOR_LINK_REL = "nofollow ugc noopener"
MAX_HREF = 2048

# WHATWG URL: a scheme is an ASCII letter followed by letters, digits, + - .
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# Characters a browser's URL parser drops or trims before it reads the scheme (C0 controls,
# space, DEL), plus Unicode whitespace an unwary decoder might leave in.
_INVISIBLE = re.compile(r"[\x00-\x20\x7f\s]+")


def safe_href(url: str) -> str | None:
    """The address to put in href/src, or None when the link must not be a link.

    Allowed: http, https, mailto, and scheme-less addresses (relative paths, `?query`,
    `#fragment`, `//host`). Everything else -- javascript:, data:, vbscript:, file:, and
    disguises such as "java\\tscript:", "&#106;avascript:" or "java%09script:" -- is refused.
    The check runs on what a browser would read: entities and percent escapes decoded, the
    characters its parser ignores removed. The address itself is returned unchanged.
    """
    if not isinstance(url, str):
        return None
    candidate = url.strip(" \t\n\r\f")
    if len(candidate) > MAX_HREF:
        return None
    # markdown-it percent-encodes spaces and controls in link destinations, so a raw one
    # here means the address did not come through it: refuse rather than guess.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in candidate):
        return None
    probe = candidate
    for _ in range(3):  # entity inside percent inside entity... a few rounds reach a fixed point
        decoded = urllib.parse.unquote(html.unescape(probe))
        if decoded == probe:
            break
        probe = decoded
    probe = _INVISIBLE.sub("", probe)
    scheme = _SCHEME.match(probe)
    if scheme:
        return candidate if scheme.group(1).lower() in ALLOWED_SCHEMES else None
    # No readable scheme, yet a colon before the path starts: some obfuscation we did not
    # decode (or a Unicode look-alike). A relative link never needs it, so refuse.
    head = re.split(r"[/?#\\]", probe, maxsplit=1)[0]
    if ":" in head:
        return None
    return candidate


def _link_allowed(url: str) -> bool:
    return safe_href(url) is not None


# --- visitor renderer ------------------------------------------------------------------------

def _visitor_link_open(self, tokens, idx, options, env):
    token = tokens[idx]
    # Defence in depth: validateLink already refused unsafe links at parse time.
    token.attrSet("href", safe_href(token.attrGet("href") or "") or "#")
    token.attrSet("rel", VISITOR_LINK_REL)
    return self.renderToken(tokens, idx, options, env)


def _visitor_image(self, tokens, idx, options, env):
    # An image becomes a link to it (or just its alt text): visitors may not embed.
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = safe_href(token.attrGet("src") or "")
    if src is None or src == "":
        return escapeHtml(alt)
    label = escapeHtml(alt or src)
    title = token.attrGet("title")
    title_attr = f' title="{escapeHtml(title)}"' if title else ""
    return f'<a href="{escapeHtml(src)}" rel="{VISITOR_LINK_REL}"{title_attr}>{label}</a>'


def _build_visitor() -> MarkdownIt:
    md = MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = _link_allowed
    md.add_render_rule("link_open", _visitor_link_open)
    md.add_render_rule("image", _visitor_image)
    return md


# --- curated renderer ------------------------------------------------------------------------

def _curated_link_open(self, tokens, idx, options, env):
    token = tokens[idx]
    href = safe_href(token.attrGet("href") or "") or "#"
    token.attrSet("href", href)
    if href.lower().startswith(("http:", "https:", "//")):
        token.attrSet("rel", "noopener")  # leaving the site: the other page gets no window.opener
    return self.renderToken(tokens, idx, options, env)


def _curated_image(self, tokens, idx, options, env):
    token = tokens[idx]
    src = safe_href(token.attrGet("src") or "")
    if src is None or src == "" or src.lower().startswith("mailto:"):
        return escapeHtml(self.renderInlineAsText(token.children or [], options, env))
    token.attrSet("src", src)
    return self.image(tokens, idx, options, env)


def _build_curated() -> MarkdownIt:
    # Curated notes are written by the museum's curators: CommonMark plus tables and
    # strikethrough, images allowed. Raw HTML stays off anyway -- the notes need none, and a
    # leaked curator password should not become script on every page.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _link_allowed
    md.add_render_rule("link_open", _curated_link_open)
    md.add_render_rule("image", _curated_image)
    return md


_VISITOR = _build_visitor()
_CURATED = _build_curated()


def render_visitor(text: str) -> str:
    """HTML for a visitor's Markdown: no raw HTML, no images, safe links with rel=nofollow ugc noopener."""
    return _VISITOR.render(text)


def render_curated(text: str) -> str:
    """HTML for a curator's Markdown (notes and curator annotations): CommonMark + tables, safe links."""
    return _CURATED.render(text)
