"""CORS with VISION_CORS_ORIGINS set (service/headers.py), against a real keyed `bentoml serve`.

The server lists one origin, `http://localhost:PORT` of a small page server started here, and has
an API key. Over HTTP: the listed origin gets its grant on answers, preflights and refusals (a 401
without a key, which a page must be able to read), and the `Authorization` header is allowed;
any other origin gets nothing. In Chromium: a page on the listed origin calls the API with its key
across origins; the same page on another origin (`http://127.0.0.1:PORT`) is blocked by the
browser. The security headers and the CSP are tested on each kind of route in tests/test_page.py;
the default (unset: no grant at all) there too.
"""

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from page_browser import EXAMPLES, manifest, playwright_missing

from bench.processes import Server, free_port

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")

KEY = "cors-test-key-0123456789abcdef"
ELSEWHERE = "https://elsewhere.example.com"
PROBE_PAGE = b"<!doctype html><title>another site</title><p>a page on another origin</p>"


@contextlib.contextmanager
def page_server():
    """A plain page on a port of its own: another origin than the service, as another site is."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(PROBE_PAGE)))
            self.end_headers()
            self.wfile.write(PROBE_PAGE)

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


@pytest.fixture(scope="module")
def site():
    """(the listed origin, the port of the page server)."""
    with page_server() as port:
        yield f"http://localhost:{port}", port


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cors")
    path, _ = manifest(folder)
    env = {
        "VISION_MANIFEST": str(path),
        "VISION_WORKERS": "1",
        "VISION_API_KEYS": KEY,
        "VISION_CORS_ORIGINS": f"{site[0]}, https://app.example.com",
    }
    server = Server(env, folder / "serve.log", port=free_port())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def preflight(origin: str, method: str = "POST") -> dict:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization",
    }


def grants(answer: httpx.Response) -> dict:
    return {k.lower(): v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}


def test_a_listed_origin_gets_its_grant_and_no_other_origin_any(http, site):
    keyed = {"Authorization": f"Bearer {KEY}"}
    listed = http.get("/info", headers={"Origin": site[0], **keyed})
    assert listed.status_code == 200 and "models" in listed.json()
    assert grants(listed)["access-control-allow-origin"] == site[0]
    assert "origin" in listed.headers["vary"].lower()  # caches keep one answer per origin
    assert "access-control-allow-credentials" not in grants(listed)  # keys, never cookies
    other = http.get("/info", headers={"Origin": ELSEWHERE, **keyed})
    assert other.status_code == 200 and not grants(other)
    # Exact origins: another scheme, port or a subdomain of a listed one is another origin.
    for near in ("https://localhost", site[0].replace("http:", "https:"), "https://sub.app.example.com"):
        assert not grants(http.get("/info", headers={"Origin": near, **keyed})), near


def test_a_preflight_from_a_listed_origin_is_answered_and_allows_the_key_header(http, site):
    for path, method in (("/faces", "POST"), ("/info", "GET")):
        answer = http.options(path, headers=preflight("https://app.example.com", method))
        assert answer.status_code == 200, (path, answer.text)
        granted = grants(answer)
        assert granted["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in granted["access-control-allow-headers"].lower()
        assert method in granted["access-control-allow-methods"]
        assert answer.headers["x-content-type-options"] == "nosniff"  # the security headers too
    refused = http.options("/faces", headers=preflight(ELSEWHERE))
    assert refused.status_code == 400 and "access-control-allow-origin" not in grants(refused)


def test_a_refusal_carries_the_grant_so_the_page_can_read_it(http, site):
    """The 401 without a key (service.auth) and a 400: CORS is outside both, so a page on a listed
    origin reads the service's own words rather than an opaque network error."""
    no_key = http.post("/faces", headers={"Origin": site[0]}, files={"image": ("a.jpg", b"x")})
    assert no_key.status_code == 401 and grants(no_key)["access-control-allow-origin"] == site[0]
    assert "error" in no_key.json()
    bad = http.post(
        "/faces",
        headers={"Origin": site[0], "Authorization": f"Bearer {KEY}"},
        files={"image": ("a.txt", b"not an image")},
    )
    assert bad.status_code == 400 and grants(bad)["access-control-allow-origin"] == site[0]


def test_a_listed_origin_posts_a_photo_with_its_key(http, site):
    answer = http.post(
        "/faces",
        headers={"Origin": site[0], "Authorization": f"Bearer {KEY}"},
        files={"image": ("face.jpg", (EXAMPLES / "face.jpg").read_bytes())},
    )
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1
    assert grants(answer)["access-control-allow-origin"] == site[0]


FETCH = """async ([url, key]) => {
    try {
        const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
        return { status: response.status, models: Object.keys((await response.json()).models || {}).length };
    } catch (e) {
        return { error: String(e) };
    }
}"""


@pytest.mark.browser
@pytest.mark.skipif(playwright_missing() is not None, reason=str(playwright_missing()))
def test_in_chromium_the_listed_origin_calls_the_api_and_another_is_blocked(server, site):
    from page_browser import browser

    origin, port = site
    with browser() as chrome:
        context = chrome.new_context()
        try:
            page = context.new_page()
            page.goto(f"{origin}/")  # localhost: listed
            allowed = page.evaluate(FETCH, [f"{server.url}/info", KEY])  # 127.0.0.1: another origin
            assert allowed.get("status") == 200 and allowed["models"] >= 3, allowed
            page.goto(f"http://127.0.0.1:{port}/")  # the same page on an origin not listed
            blocked = page.evaluate(FETCH, [f"{server.url}/info", KEY])
            assert "error" in blocked and "Failed to fetch" in blocked["error"], blocked
        finally:
            context.close()
