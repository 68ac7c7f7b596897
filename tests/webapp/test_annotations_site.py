"""Notes on the site: curated notes and approved annotations beside their anchors, the visitor's
form (CSRF, honeypot, rate limit, validation), the curator's desk (login, approve, hide, edit),
and XSS attempts coming out inert. In-process (TestClient) against the real release, with a
fresh database file per module."""
from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from pagecheck import check_page

CURATOR, PASSWORD = "ada", "correct horse battery staple"
LEAVING = "grace"  # a second curator, for logging out without ending ada's sessions


@pytest.fixture(scope="module")
def db_site(site, tmp_path_factory):
    """The session's parsed release, with a database (replays + annotations) of its own."""
    from replay.store import RunStore

    from annotations.accounts import add_curator
    from webapp.site import open_annotations

    db = tmp_path_factory.mktemp("annotations-site") / "site.sqlite"
    settings = dataclasses.replace(site.settings, db=db, post_limit=1000)
    built = dataclasses.replace(site, settings=settings, runs=RunStore(db), annotations=open_annotations(db, site.archive))
    add_curator(built.annotations, CURATOR, PASSWORD)
    add_curator(built.annotations, LEAVING, PASSWORD)
    return built


@pytest.fixture(scope="module")
def app(db_site):
    from webapp.app import create_app

    return create_app(db_site.settings, db_site)


def visitor(app, address: str = "203.0.113.7", **options):
    from fastapi.testclient import TestClient

    return TestClient(app, client=(address, 50000), follow_redirects=False, **options)


def form_token(client, anchor: str) -> str:
    response = client.get("/annotate", params={"anchor": anchor})
    assert response.status_code == 200, response.text
    token = re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)
    assert client.cookies.get("csrf") == token
    return token


def post_note(client, anchor: str, body: str, *, name: str = "A visitor", website: str = "", token: str | None = None):
    token = form_token(client, anchor) if token is None else token
    return client.post("/annotate", data={"anchor": anchor, "body": body, "name": name, "website": website,
                                          "csrf": token})


def posted_id(store, body: str) -> int:
    matches = [a.id for a in store.list() if a.body == body]
    assert len(matches) == 1, f"{body!r} stored {len(matches)} times"
    return matches[0]


@pytest.fixture(scope="module")
def curator(app):
    """A logged-in curator's client and its per-session form token."""
    client = visitor(app, "198.51.100.1")
    page = client.get("/curator/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/curator/login", data={"name": CURATOR, "password": PASSWORD, "csrf": token})
    assert response.status_code == 303 and response.headers["location"] == "/curator"
    desk = client.get("/curator")
    assert desk.status_code == 200
    client.desk_token = re.search(r'name="csrf" value="([^"]+)"', desk.text).group(1)
    return client


def set_status(curator, annotation_id: int, status: str):
    response = curator.post(f"/curator/annotations/{annotation_id}/status",
                            data={"status": status, "csrf": curator.desk_token})
    assert response.status_code == 303, response.text
    return response


# --- curated notes beside their anchors ---------------------------------------------------------

def element_html(page: str, element_id: str, tag: str = "tr") -> str:
    match = re.search(rf'<{tag} id="{re.escape(element_id)}"[^>]*>(.*?)</{tag}>\s*(?=<{tag}[\s>]|</tbody>|</table>)',
                      page, re.S)
    assert match, f"no <{tag} id={element_id!r}>"
    return match.group(1)


def test_curated_notes_on_120_beside_their_anchors(app, db_site, release):
    from annotations.notes import notes_for

    client = visitor(app)
    page = client.get("/experiments/120").text
    twin = client.get("/experiments/120.json").json()
    expected = {note.slug for note in notes_for("120", db_site.notes, release)}
    assert expected and {note["slug"] for note in twin["notes"]} == expected
    by_slug = {note.slug: note for note in db_site.notes}

    # The note about #120 as a whole sits in the notes section near the top.
    notes_section = re.search(r'<section id="notes" class="notes">(.*?)</section>', page, re.S).group(1)
    whole = [slug for slug in expected if any(str(a) == "120" for a in by_slug[slug].anchors)]
    assert whole
    for slug in whole:
        assert escape(by_slug[slug].title) in notes_section
    assert page.index('id="notes"') < page.index('id="network"')

    # A key note (120/conv1a/epsW) beside the conv1a row, labelled with its key.
    row = element_html(page, "layer-conv1a")
    lowered = by_slug["learning-rates-by-hand"]
    assert escape(lowered.title) in row and '<code class="note-on">epsW</code>' in row
    assert escape(lowered.title) not in element_html(page, "layer-conv2a")
    # ... and the same note beside line 167 of the params file in the raw files section.
    line = element_html(page, "raw-layers-layer-params-120.cfg-L167")
    assert escape(lowered.title) in line
    assert escape(lowered.title) not in element_html(page, "raw-layers-layer-params-120.cfg-L166")


def test_a_line_note_shows_on_every_page_of_its_file(app, db_site):
    """layers/layers-120.cfg:272 is in the definition file #120-2012 shares with #120."""
    note = next(n for n in db_site.notes if any(str(a) == "layers/layers-120.cfg:272" for a in n.anchors))
    client = visitor(app)
    for url, row_id in (("/experiments/120", "raw-layers-layers-120.cfg-L272"),
                        ("/experiments/120-2012", "raw-layers-layers-120.cfg-L272"),
                        ("/files/layers/layers-120.cfg", "L272")):
        page = client.get(url).text
        assert escape(note.title) in element_html(page, row_id), url
        assert escape(note.title) not in element_html(page, row_id.replace("L272", "L271")), url
    twin = client.get("/files/layers/layers-120.cfg.json").json()
    assert note.slug in {n["slug"] for n in twin["notes"]}


def test_compare_page_shows_layer_notes_and_twin(app, db_site, release):
    from annotations.notes import notes_for

    client = visitor(app)
    page = client.get("/compare/120,131").text
    twin = client.get("/compare/120,131.json").json()
    expected = {n.slug for eid in ("120", "131") for n in notes_for(eid, db_site.notes, release)
                if any(a.kind != "line" and a.experiment == eid for a in n.anchors)}
    assert {n["slug"] for n in twin["notes"]} == expected
    report = check_page(page)
    assert not report.all_problems()
    refs = re.findall(r'<a class="note-ref" href="#([^"]+)"', page)
    assert refs and all(ref in report.ids for ref in refs)


def test_pages_with_notes_stay_valid_and_their_links_resolve(app):
    client = visitor(app)
    for url in ("/experiments/120", "/experiments/131", "/files/layers/layer-params-120.cfg", "/glossary"):
        page = client.get(url)
        assert page.status_code == 200
        report = check_page(page.text)
        assert not report.all_problems(), (url, report.all_problems()[:5])
        annotate_links = sorted({link for _, link in report.links if link.startswith("/annotate?")})
        if url.startswith("/experiments/"):
            assert len(annotate_links) > 10
        for link in annotate_links[:40]:
            assert client.get(link).status_code == 200, link
        glossary_links = {link for _, link in report.links if link.startswith("/glossary#")}
        glossary_ids = check_page(client.get("/glossary").text).ids
        assert not [link for link in glossary_links if link.split("#", 1)[1] not in glossary_ids]


def test_layer_types_and_keys_link_to_the_glossary(app):
    page = visitor(app).get("/experiments/120").text
    header = re.search(r'<table class="layers">\s*<thead>(.*?)</thead>', page, re.S).group(1)
    assert re.search(r'<a class="term" href="/glossary#term-epsw">epsW</a>', header)
    row = element_html(page, "layer-conv1a")
    assert '<a class="term" href="/glossary#term-conv">conv</a>' in row
    with_neuron = next(r for r in visitor(app).get("/experiments/120.json").json()["layer_table"] if r["neuron"])
    assert f'href="/glossary#term-{with_neuron["neuron"]}"' in element_html(page, f"layer-{with_neuron['name']}")
    compare = visitor(app).get("/compare/120,131").text
    assert '<span class="k"><a class="term" href="/glossary#term-filters">filters</a></span>' in compare


# --- a visitor's note: from the form to the page ------------------------------------------------

def test_pending_is_hidden_until_approved_and_the_cache_refreshes(app, db_site, curator):
    client = visitor(app, "203.0.113.20")
    body = "The *second* GPU column starts here: approved-marker-7f3"
    before = client.get("/experiments/120")
    assert before.status_code == 200 and body not in before.text
    assert client.get("/experiments/120").headers.get("etag") == before.headers.get("etag")

    response = post_note(client, "120/conv1b", body, name="Grace")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/annotate/thanks?anchor=120/conv1b")
    thanks = client.get(response.headers["location"])
    assert thanks.status_code == 200 and "awaits a curator" in thanks.text
    store = db_site.annotations
    annotation_id = posted_id(store, body)
    assert store.get(annotation_id).status == "pending"

    for url in ("/experiments/120", "/experiments/120.json", "/compare/120,131"):
        assert "approved-marker-7f3" not in client.get(url).text, url  # pending: for curators only

    set_status(curator, annotation_id, "approved")
    page = client.get("/experiments/120")
    assert page.headers.get("etag") != before.headers.get("etag")
    row = element_html(page.text, "layer-conv1b")
    assert "approved-marker-7f3" in row and "<em>second</em>" in row and "Grace" in row
    twin = client.get("/experiments/120.json").json()
    assert [a["id"] for a in twin["annotations"] if a["id"] == annotation_id] == [annotation_id]
    assert all(a["status"] == "approved" for a in twin["annotations"])
    assert "approved-marker-7f3" in client.get("/compare/120,131").text

    set_status(curator, annotation_id, "hidden")
    assert "approved-marker-7f3" not in client.get("/experiments/120").text
    assert annotation_id not in [a["id"] for a in client.get("/experiments/120.json").json()["annotations"]]


def test_a_line_annotation_shows_on_the_file_page(app, db_site, curator):
    client = visitor(app, "203.0.113.21")
    body = "line-note-marker-51 about this line"
    assert post_note(client, "layers/layer-params-131.cfg:5", body).status_code == 303
    set_status(curator, posted_id(db_site.annotations, body), "approved")
    assert body in element_html(client.get("/files/layers/layer-params-131.cfg").text, "L5")
    assert body in element_html(client.get("/experiments/131").text, "raw-layers-layer-params-131.cfg-L5")


def test_anchor_spelling_is_made_canonical(app, db_site):
    client = visitor(app, "203.0.113.22")
    assert post_note(client, "120/conv1a/EPSW", "canonical-marker").status_code == 303
    assert db_site.annotations.get(posted_id(db_site.annotations, "canonical-marker")).anchor == "120/conv1a/epsW"


def test_curator_edit_appends_a_revision(app, db_site, curator):
    client = visitor(app, "203.0.113.23")
    assert post_note(client, "131", "first-wording-marker").status_code == 303
    annotation_id = posted_id(db_site.annotations, "first-wording-marker")
    response = curator.post(f"/curator/annotations/{annotation_id}/edit",
                            data={"body": "second-wording-marker", "csrf": curator.desk_token})
    assert response.status_code == 303
    set_status(curator, annotation_id, "approved")
    history = db_site.annotations.get(annotation_id, with_history=True)
    assert [r.body for r in history.revisions] == ["first-wording-marker", "second-wording-marker"]
    assert history.revisions[1].editor == CURATOR
    notes = re.search(r'<section id="notes" class="notes">(.*?)</section>', client.get("/experiments/131").text,
                      re.S).group(1)
    assert "second-wording-marker" in notes and "first-wording-marker" not in notes
    assert "second-wording-marker" in curator.get("/curator").text
    data = curator.get("/curator.json").json()
    assert data["curator"] == CURATOR and any(a["id"] == annotation_id for a in data["recent"])


def test_a_logged_in_curator_posts_approved_notes(app, db_site, curator):
    token = form_token(curator, "131/conv2a")
    response = curator.post("/annotate", data={"anchor": "131/conv2a", "body": "curator-marker-4", "csrf": token,
                                               "website": ""})
    assert response.status_code == 303 and response.headers["location"] == "/experiments/131#layer-conv2a"
    stored = db_site.annotations.get(posted_id(db_site.annotations, "curator-marker-4"))
    assert (stored.role, stored.status, stored.author) == ("curator", "approved", CURATOR)


# --- refusals --------------------------------------------------------------------------------------

def test_posts_without_a_valid_csrf_token_are_403(app, db_site):
    store = db_site.annotations
    count = store.count()
    client = visitor(app, "203.0.113.30")
    data = {"anchor": "120", "body": "csrf-marker", "name": "x", "website": ""}
    assert client.post("/annotate", data=data).status_code == 403                    # no cookie, no token
    token = form_token(client, "120")
    assert client.post("/annotate", data=data).status_code == 403                    # cookie, no token
    assert client.post("/annotate", data=data | {"csrf": token + "x"}).status_code == 403   # a different token
    forged = "abc.def"
    client.cookies.set("csrf", forged)
    assert client.post("/annotate", data=data | {"csrf": forged}).status_code == 403  # equal but not signed here
    other = visitor(app, "203.0.113.31")
    assert other.post("/annotate", data=data | {"csrf": token}).status_code == 403    # a token without its cookie
    response = client.post("/annotate", data=data | {"csrf": forged})
    assert "Traceback" not in response.text and "expired" in response.text
    assert store.count() == count


def test_honeypot_posts_are_kept_hidden_and_answered_as_success(app, db_site, curator):
    client = visitor(app, "203.0.113.40")
    response = post_note(client, "120/fc1000", "honeypot-marker", website="http://spam.example")
    assert response.status_code == 303 and response.headers["location"].startswith("/annotate/thanks")
    stored = db_site.annotations.get(posted_id(db_site.annotations, "honeypot-marker"), with_history=True)
    assert stored.status == "hidden" and stored.events[-1].actor == "honeypot"
    assert "honeypot-marker" not in client.get("/experiments/120").text
    desk = curator.get("/curator").text
    assert "honeypot-marker" in desk and "caught by the honeypot" in desk


def test_rate_limit_per_address_is_429(site, tmp_path):
    from replay.store import RunStore

    from webapp.app import create_app
    from webapp.site import open_annotations

    db = tmp_path / "limited.sqlite"
    limited = dataclasses.replace(site, settings=dataclasses.replace(site.settings, db=db, post_limit=2),
                                  runs=RunStore(db), annotations=open_annotations(db, site.archive))
    app = create_app(limited.settings, limited)
    client = visitor(app, "192.0.2.50")
    assert [post_note(client, "120", f"limit {i}").status_code for i in range(2)] == [303, 303]
    refused = post_note(client, "120", "limit 2")
    assert refused.status_code == 429 and "Please wait" in refused.text
    assert refused.headers["retry-after"] and refused.headers["cache-control"] == "no-store"
    assert post_note(visitor(app, "192.0.2.51"), "120", "limit other").status_code == 303
    assert limited.annotations.count() == 3


@pytest.mark.parametrize("anchor", ["120/no-such-layer", "120/conv1a/noSuchKey", "9999", "layers/layers-120.cfg:99999",
                                    "../../etc/passwd:1", "<script>alert(1)</script>"])
def test_a_bad_anchor_is_422_naming_the_field(app, anchor):
    client = visitor(app, "203.0.113.60")
    shown = client.get("/annotate", params={"anchor": anchor})
    assert shown.status_code == 422 and "<code>anchor</code>" in shown.text
    token = form_token(client, "120")
    posted = client.post("/annotate", data={"anchor": anchor, "body": "x", "name": "y", "csrf": token})
    assert posted.status_code == 422 and "<code>anchor</code>" in posted.text
    assert "<script>alert" not in posted.text and "Traceback" not in posted.text


@pytest.mark.parametrize("field, values", [("body", {"body": "x" * 4001}), ("body", {"body": "   "}),
                                           ("name", {"name": ""}), ("name", {"name": "n" * 81})])
def test_too_long_or_empty_fields_are_422_and_the_text_is_kept(app, field, values):
    client = visitor(app, "203.0.113.61")
    data = {"anchor": "120", "body": "kept-text", "name": "Someone", "website": "", "csrf": form_token(client, "120")}
    response = client.post("/annotate", data=data | values)
    assert response.status_code == 422
    assert f"<code>{field}</code>" in response.text
    if field == "name":
        assert "kept-text" in response.text  # the form comes back with what was written


def test_a_visitor_cannot_reach_the_curators_desk(app, db_site):
    client = visitor(app, "203.0.113.70")
    response = client.get("/curator")
    assert response.status_code == 303 and response.headers["location"] == "/curator/login"
    assert client.get("/curator.json").status_code == 403
    assert post_note(client, "120/conv2b", "visitor-approve-marker").status_code == 303
    annotation_id = posted_id(db_site.annotations, "visitor-approve-marker")
    token = client.cookies.get("csrf")
    for data in ({"status": "approved"}, {"status": "approved", "csrf": token}):
        assert client.post(f"/curator/annotations/{annotation_id}/status", data=data).status_code == 403
        assert client.post(f"/curator/annotations/{annotation_id}/edit", data=data | {"body": "x"}).status_code == 403
    client.cookies.set("curator", f"{CURATOR}|9999999999|forged")
    assert client.get("/curator").status_code == 303
    assert client.post(f"/curator/annotations/{annotation_id}/status",
                       data={"status": "approved", "csrf": token}).status_code == 403
    assert db_site.annotations.get(annotation_id).status == "pending"


def test_login_cookie_flags_and_wrong_passwords(app):
    client = visitor(app, "203.0.113.80")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/curator/login").text).group(1)
    wrong = client.post("/curator/login", data={"name": LEAVING, "password": "not the password", "csrf": token})
    assert wrong.status_code == 403 and "do not match" in wrong.text and "curator" not in client.cookies
    assert client.post("/curator/login", data={"name": LEAVING, "password": PASSWORD}).status_code == 403  # no CSRF
    ok = client.post("/curator/login", data={"name": LEAVING, "password": PASSWORD, "csrf": token})
    cookie = next(v for k, v in ok.headers.multi_items() if k == "set-cookie" and v.startswith("curator="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    desk = client.get("/curator")
    assert desk.status_code == 200 and desk.headers["cache-control"] == "no-store"
    assert "x-page-cache" not in desk.headers and "etag" not in desk.headers
    desk_token = re.search(r'name="csrf" value="([^"]+)"', desk.text).group(1)
    copied = client.cookies["curator"]  # e.g. left in another browser
    out = client.post("/curator/logout", data={"csrf": desk_token})
    assert out.status_code == 303 and "curator" not in client.cookies
    assert client.get("/curator").status_code == 303
    # The server remembers the logout: the copied cookie no longer opens the desk.
    other = visitor(app, "203.0.113.82")
    other.cookies.set("curator", copied)
    assert other.get("/curator").status_code == 303 and other.get("/curator.json").status_code == 403
    # A fresh login works again.
    token = re.search(r'name="csrf" value="([^"]+)"', other.get("/curator/login").text).group(1)
    assert other.post("/curator/login", data={"name": LEAVING, "password": PASSWORD, "csrf": token}).status_code == 303
    assert other.get("/curator").status_code == 200

    https = visitor(app, "203.0.113.81", base_url="https://testserver")
    token = re.search(r'name="csrf" value="([^"]+)"', https.get("/curator/login").text).group(1)
    ok = https.post("/curator/login", data={"name": CURATOR, "password": PASSWORD, "csrf": token})
    cookie = next(v for k, v in ok.headers.multi_items() if k == "set-cookie" and v.startswith("curator="))
    assert "Secure" in cookie


def test_forms_are_never_cached_and_pages_carry_a_csp(app):
    client = visitor(app, "203.0.113.90")
    for url in ("/annotate?anchor=120", "/curator/login", "/annotate/thanks?anchor=120"):
        response = client.get(url)
        assert response.headers["cache-control"] == "no-store", url
        assert "etag" not in response.headers and "x-page-cache" not in response.headers, url
    first = client.get("/annotate?anchor=120").headers.get("set-cookie", "")
    assert "csrf=" in first and "HttpOnly" in first
    page = client.get("/experiments/120")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "<script" not in page.text.lower()
    assert "content-security-policy" not in client.get("/api").headers  # Swagger UI needs its CDN script


# --- XSS: whatever a visitor writes comes out inert ------------------------------------------------

XSS_BODIES = [
    "<script>alert('xss-1')</script>",
    "<img src=x onerror=alert('xss-2')>",
    "[click](javascript:alert('xss-3'))",
    "[click](JaVaScRiPt:alert('xss-4'))",
    "[click](java\tscript:alert('xss-5'))",
    "[click](&#106;avascript:alert('xss-6'))",
    '[t](https://example.org "x\\" onmouseover=\\"alert(\'xss-7\')")',
    '[t](https://example.org "<b onmouseover=alert(\'xss-8\')>title</b>")',
    "![pic](javascript:alert('xss-9'))",
    "<a href=\"javascript:alert('xss-10')\" onclick=\"alert(1)\">x</a>",
    "<svg onload=alert('xss-11')></svg>",
    "<iframe src=\"javascript:alert('xss-12')\"></iframe>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) xss-13",
    "<style>body{display:none}</style> xss-14",
]


class Inertness(HTMLParser):
    """Collects what could run: script elements, on* attributes, javascript:/data: addresses."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "style"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value:
                probe = re.sub(r"[\x00-\x20]", "", value).lower()
                if probe.startswith(("javascript:", "vbscript:", "data:text")):
                    self.found.append(f"<{tag} {name}={value!r}>")

    handle_startendtag = handle_starttag


def runnable(html: str) -> list[str]:
    parser = Inertness()
    parser.feed(html)
    parser.close()
    return parser.found


def test_xss_attempts_come_out_inert(app, db_site, curator):
    client = visitor(app, "203.0.113.100")
    ids = []
    for body in XSS_BODIES:
        assert post_note(client, "145/conv1a", body, name="<script>alert('xss-name')</script>").status_code == 303
        ids.append(posted_id(db_site.annotations, body))
    # Baseline: these pages have no script and no event attribute of their own.
    assert runnable(client.get("/experiments/145").text) == []

    desk = curator.get("/curator").text
    assert runnable(desk) == [], runnable(desk)
    assert desk.count("xss-") >= len(XSS_BODIES)  # shown (as text), not dropped
    assert "&lt;script&gt;alert(&#39;xss-name&#39;)&lt;/script&gt;" in desk

    for annotation_id in ids:
        set_status(curator, annotation_id, "approved")
    for url in ("/experiments/145", "/compare/120,145", "/annotate?anchor=145/conv1a"):
        page = client.get(url).text
        assert runnable(page) == [], (url, runnable(page))
        assert not check_page(page).all_problems(), url
    page = client.get("/experiments/145").text
    row = element_html(page, "layer-conv1a")
    for marker in ("xss-1", "xss-2", "xss-10", "xss-11", "xss-14"):
        assert marker in row, marker  # raw HTML shown as text
    twin = client.get("/experiments/145.json").json()
    stored = {a["id"]: a for a in twin["annotations"]}
    assert set(ids) <= set(stored)
    assert all(runnable(stored[i]["html"]) == [] for i in ids)


def test_odd_requests_get_the_sites_error_pages(app, curator):
    client = visitor(app, "203.0.113.110")
    assert client.get("/annotate").status_code == 422
    token = form_token(client, "120")
    as_json = client.post("/annotate", content=b'{"anchor": "120"}', headers={"content-type": "application/json"})
    assert as_json.status_code == 415
    huge = client.post("/annotate", data={"anchor": "120", "body": "x" * 70_000, "name": "n", "csrf": token})
    assert huge.status_code == 413
    assert curator.post("/curator/annotations/999999/status",
                        data={"status": "approved", "csrf": curator.desk_token}).status_code == 404
    assert curator.post("/curator/annotations/1/status",
                        data={"status": "published", "csrf": curator.desk_token}).status_code == 422
    assert curator.post("/curator/annotations/abc/status",
                        data={"status": "approved", "csrf": curator.desk_token}).status_code == 422
    assert curator.post("/curator/annotations/1/status", data={"status": "approved"}).status_code == 403
    for response in (as_json, huge):
        assert "Traceback" not in response.text and response.headers["content-type"].startswith("text/html")
