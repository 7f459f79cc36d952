"""The demo page at `/` (service/page/), against a real `bentoml serve`.

- Without a browser: the page and its files are served, BentoML's own routes stay where they were,
  the Swagger UI moved to /docs, the page's One Euro filter has the Python client's constants, and
  every kind of answer carries the security headers (the CSP on HTML) and no CORS grant.
- In a real Chromium (`browser` marker; skipped without Chromium and Playwright): a photo's faces
  drawn, a digit drawn on the pad and read, a photo of a number, the webcam through Chromium's fake
  camera, the service's errors and readiness as the page shows them, and the JS filter smoothing a
  sequence of answers exactly as clients/smoothing.py does; all with the page's Content-Security-
  Policy on, and any violation of it fails the test.

The server runs the shipped models (models/manifest.json) when they are there, else stand-ins;
YuNet is real in both, so faces are found either way (tests/page_browser.py).
"""

import ast
import re
from pathlib import Path

import cv2
import httpx
import pytest
from page_browser import EXAMPLES, ONE_STROKE, draw_on_pad, new_page, playwright_missing, serving, write_y4m
from photos import written_number
from service_models import ROOT

from service.images import NOT_AN_IMAGE
from training.mnist import read_idx

PAGE = ROOT / "service" / "page"
SMOOTHING_CONSTANTS = ("MIN_CUTOFF_HZ", "BETA", "DERIVATIVE_CUTOFF_HZ", "MATCH_IOU", "FORGET_AFTER_S")

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")


def browser_test(test):
    """A test in Chromium: `browser` marker; skipped, with the reason, where it cannot run."""
    skip = pytest.mark.skipif(playwright_missing() is not None, reason=str(playwright_missing()))
    return pytest.mark.browser(skip(test))


# --- the One Euro filter's twin: the constants (no browser) ----------------------------------------


def python_constants(path: Path) -> dict[str, float]:
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }


def js_constants(path: Path) -> dict[str, float]:
    found = re.findall(r"^export const (\w+) = ([-+0-9.eE]+);", path.read_text(), re.M)
    return {name: float(value) for name, value in found}


def test_the_page_filter_has_the_python_clients_constants():
    python = python_constants(ROOT / "clients" / "smoothing.py")
    js = js_constants(PAGE / "smoothing.js")
    for name in SMOOTHING_CONSTANTS:
        assert name in python, f"clients/smoothing.py has no {name}"
        assert name in js, f"service/page/smoothing.js has no `export const {name} = ...;`"
        assert js[name] == python[name], f"{name}: smoothing.js {js[name]} != clients/smoothing.py {python[name]}"


def test_every_page_file_that_is_referenced_exists():
    index = (PAGE / "index.html").read_text() + (PAGE / "docs.html").read_text()
    referenced = set(re.findall(r'(?:href|src)="page/([^"#]+)"', index))
    for script in PAGE.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert {"app.js", "style.css", "smoothing.js"} <= referenced
    assert not [name for name in referenced if not (PAGE / name).is_file()]
    assert not re.search(r"(?:href|src)=\"(?:https?:)?//", index)  # no CDN: it works offline


# --- the routes, over HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, real models?) for the module."""
    with serving(tmp_path_factory.mktemp("page")) as both:
        yield both


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def test_the_page_is_at_the_root_and_every_other_route_stays(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<title>visionserve</title>" in page.text
        for name in sorted(p.name for p in PAGE.iterdir()):
            assert http.get(f"/page/{name}").status_code == 200, name
        assert http.get("/page/nothing.js").status_code == 404
        docs = http.get("/docs")
        assert docs.status_code == 200 and 'id="swagger-ui"' in docs.text
        assert "googletagmanager" not in docs.text  # BentoML's page has an analytics tag; ours has none
        assert http.get("/static_content/swagger-ui-bundle.js").status_code == 200
        assert http.get("/docs.json").json()["info"]["title"] == "visionserve"
        assert "models" in http.get("/info").json()
        for probe in ("/livez", "/readyz", "/metrics"):
            assert http.get(probe).status_code == 200, probe
        answer = http.post("/faces", files={"image": ("face.jpg", (EXAMPLES / "face.jpg").read_bytes())})
        assert answer.status_code == 200 and len(answer.json()["faces"]) == 1


HTML_ROUTES = ("/", "/docs")
OTHER_ROUTES = ("/page/app.js", "/page/style.css", "/page/favicon.svg", "/static_content/swagger-ui-bundle.js")
OTHER_ROUTES += ("/info", "/docs.json", "/livez", "/readyz", "/metrics", "/nothing-here")


def test_every_answer_carries_the_security_headers_and_html_its_policy(server):
    """Over HTTP, on each kind of route: the page, the Swagger UI, the page's files, BentoML's
    assets, the JSON answers and probes, a 404, an answer and a refusal of an API."""
    from service.headers import OTHER_POLICY, PAGE_POLICY

    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = {path: http.get(path) for path in HTML_ROUTES + OTHER_ROUTES}
        face = (EXAMPLES / "face.jpg").read_bytes()
        answers["POST /faces"] = http.post("/faces", files={"image": ("face.jpg", face)})
        answers["POST /faces (not an image)"] = http.post("/faces", files={"image": ("a.txt", b"text")})
    assert answers["/nothing-here"].status_code == 404 and answers["POST /faces (not an image)"].status_code == 400
    for route, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", route
        assert answer.headers.get("referrer-policy") == "no-referrer", route
        assert answer.headers.get("x-frame-options") == "DENY", route
        html = answer.headers["content-type"].startswith("text/html")
        assert html == (route in HTML_ROUTES), route
        expected = PAGE_POLICY if html else OTHER_POLICY
        assert answer.headers.get("content-security-policy") == expected, route
    directives = dict(d.strip().split(" ", 1) for d in PAGE_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"  # no inline, no eval
    assert directives["frame-ancestors"] == "'none'" and directives["default-src"] == "'none'"
    assert "*" not in PAGE_POLICY and "http" not in PAGE_POLICY  # this origin only
    assert dict(d.strip().split(" ", 1) for d in OTHER_POLICY.split(";")) == {
        "default-src": "'none'",
        "frame-ancestors": "'none'",
    }


def test_no_cors_grant_unless_origins_are_listed(server):
    """The server runs with VISION_CORS_ORIGINS unset: a page on another origin gets no
    Access-Control-Allow-Origin, on a simple request or a preflight (tests/test_headers.py: set)."""
    origin = {"Origin": "https://elsewhere.example.com"}
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [http.get("/info", headers=origin), http.get("/", headers=origin)]
        answers.append(http.options("/faces", headers=preflight))
    for answer in answers:
        assert not [name for name in answer.headers if name.lower().startswith("access-control-")], answer.headers
    assert answers[0].status_code == 200 and answers[2].status_code != 200


# --- in Chromium ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    from page_browser import browser

    if why := playwright_missing():
        pytest.skip(why)
    video = write_y4m(tmp_path_factory.mktemp("camera") / "faces.y4m")
    with browser(video) as chrome:
        yield chrome


@pytest.fixture
def page(chrome, server):
    page = new_page(chrome, server.url)
    outside = []
    page.on("request", lambda r: r.url.startswith(("data:", "blob:", server.url)) or outside.append(r.url))
    yield page
    unexpected = [e for e in page.errors if "Failed to load resource" not in e]  # the 4xx the tests ask for
    violations = page.violations
    page.context.close()
    assert not unexpected, unexpected
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"
    assert not outside, f"the page asked other hosts: {outside}"


@browser_test
def test_faces_are_drawn_on_a_photo_and_a_point_names_itself(page):
    page.set_input_files("#faces-file", str(EXAMPLES / "group.jpg"))
    page.wait_for_selector("#faces-summary[data-faces]")
    assert page.get_attribute("#faces-summary", "data-faces") == "5"
    assert "5 faces in 1368×314 pixels" in page.text_content("#faces-summary")
    assert page.is_visible("#faces-canvas") and not page.is_visible("#faces-drop .placeholder")
    shown = page.evaluate("({points: visionPage.faces.points, answer: visionPage.faces.answer})")
    assert len(shown["points"]) == 5 * 15
    point = shown["points"][20]
    name = shown["answer"]["faces"][point["face"]]["keypoints"][20 - 15 * point["face"]]["name"]
    canvas = page.locator("#faces-canvas").bounding_box()
    page.mouse.move(canvas["x"] + point["x"], canvas["y"] + point["y"])
    page.wait_for_selector("#faces-tip:not([hidden])")
    assert page.text_content("#faces-tip").startswith(name.replace("_", " "))

    page.set_input_files("#faces-file", str(EXAMPLES / "face.jpg"))
    page.wait_for_function("() => document.getElementById('faces-summary').dataset.faces === '1'")


@browser_test
def test_a_non_image_shows_the_services_own_words(page, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo at all\n")
    page.set_input_files("#faces-file", str(text))
    page.wait_for_selector("#faces-error:not([hidden])")
    assert page.text_content("#faces-error .code") == "400"
    assert page.text_content("#faces-error .message") == NOT_AN_IMAGE
    assert page.get_attribute("#faces-summary", "data-faces") is None

    page.click("#tab-digits")
    page.set_input_files("#digits-file", str(text))
    page.wait_for_selector("#digits-error:not([hidden])")
    assert page.text_content("#digits-error .message") == NOT_AN_IMAGE


@browser_test
def test_a_digit_drawn_on_the_pad_is_read(page, served):
    page.click("#tab-digits")
    draw_on_pad(page, ONE_STROKE)
    page.wait_for_selector("#digits-answer[data-digit]")
    assert page.locator("#digits-answer .bar").count() == 10
    assert page.evaluate("document.querySelector('#digits-answer img.seen').naturalWidth") == 28
    if served[1]:  # the real models: a clear 1 reads as 1
        assert page.get_attribute("#digits-answer", "data-digit") == "1"
        assert page.text_content("#digits-digit") == "1"
    page.click("#digits-clear")
    assert page.get_attribute("#digits-answer", "data-digit") is None


@browser_test
def test_a_photo_of_a_number_is_read_digit_by_digit(page, served, fixtures, tmp_path):
    images = read_idx(fixtures / "mnist" / "train-images-idx3-ubyte.gz")[:4]
    labels = read_idx(fixtures / "mnist" / "train-labels-idx1-ubyte.gz")[:4]
    photo = tmp_path / "number.png"
    cv2.imwrite(str(photo), written_number(list(images), [30, 12, 45]))
    page.click("#tab-digits")
    page.select_option("#digits-photo-kind", "number")
    page.set_input_files("#digits-file", str(photo))
    page.wait_for_selector("#digits-answer[data-number]")
    number = page.get_attribute("#digits-answer", "data-number")
    assert len(number) == 4 and page.locator("#digits-answer .tile img.seen").count() == 4
    if served[1]:
        assert number == "".join(str(int(label)) for label in labels)


@browser_test
def test_the_webcam_frames_come_back_with_a_face_and_the_rate_moves(page):
    page.click("#tab-webcam")
    page.click("#webcam-start")
    with_face = "Number(document.getElementById('webcam-stats').dataset.withFace)"
    page.wait_for_function(f"() => {with_face} >= 5", timeout=30_000)
    first = page.text_content("#webcam-fps")
    page.wait_for_function(
        f"() => {with_face} >= 12 && document.getElementById('webcam-fps').textContent !== {first!r}", timeout=30_000
    )
    assert float(page.text_content("#webcam-fps")) > 0
    assert re.fullmatch(r"\d+ ms", page.text_content("#webcam-latency"))
    assert page.text_content("#webcam-faces") == "1"
    assert not page.is_visible("#webcam-error")
    page.click("#tab-faces")  # leaving the view stops the camera
    assert page.text_content("#webcam-start") == "Start the camera"


def test_a_busy_service_makes_the_webcam_skip_frames_for_its_retry_after(page):
    """A 503 with Retry-After: the page sends no frame until the wait it asked for has passed (here
    far longer than the test looks), so frames are skipped, never queued, and it says why."""
    posted = []

    def busy(route):
        posted.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "600", "Content-Type": "application/json"},
            body='{"error": "the service is busy: retry after 600 s"}',
        )

    page.route("**/faces", busy)
    page.click("#tab-webcam")
    page.click("#webcam-start")
    page.wait_for_selector("#webcam-error:has-text('the service is busy')")
    in_flight_when_refused = len(posted)
    assert 1 <= in_flight_when_refused <= 2  # the requests already in flight (the page keeps two)
    page.wait_for_timeout(1500)  # ~45 camera frames at 30 fps: none may be sent
    assert len(posted) == in_flight_when_refused
    page.click("#tab-faces")


@browser_test
def test_a_service_that_is_not_ready_or_gone_shows_it(chrome, server):
    page = new_page(chrome, server.url)
    try:
        page.route("**/readyz", lambda route: route.fulfill(status=503, body=""))
        page.reload()
        page.wait_for_selector('#status[data-state="not-ready"]')
        assert "/readyz answered 503" in page.text_content("#status")
        page.unroute("**/readyz")
        page.route("**/readyz", lambda route: route.abort())
        page.reload()
        page.wait_for_selector('#status[data-state="down"]')
        assert page.text_content("#status") == "cannot reach the service"
    finally:
        page.context.close()


@browser_test
def test_the_page_policy_refuses_inline_script_and_the_tests_see_it(chrome, server):
    """What the page fixture's violation check rests on: under PAGE_POLICY Chromium runs no inline
    script, style or handler, and every refusal reaches page.violations."""
    from service.headers import PAGE_POLICY

    page = new_page(chrome, server.url)
    try:
        probe = f"{server.url}/page/csp-probe.html"
        html = (
            '<!doctype html><style>body { color: red }</style><p id="p" onclick="x()">p</p>'
            '<script>document.title = "inline ran"</script><script src="page/app.js" type="module"></script>'
        )
        page.route(
            probe,
            lambda route: route.fulfill(
                body=html, content_type="text/html", headers={"content-security-policy": PAGE_POLICY}
            ),
        )
        page.goto(probe)
        page.click("#p")
        assert page.title() != "inline ran"
        for _ in range(50):  # the reports come back asynchronously
            if len(page.violations) >= 3:
                break
            page.wait_for_timeout(100)
        refused = " ".join(page.violations)
        assert "script-src-elem refused inline" in refused and "style-src-elem refused inline" in refused, refused
        assert "script-src-attr refused inline" in refused, refused
    finally:
        page.context.close()


@browser_test
def test_the_swagger_ui_is_at_docs(chrome, server):
    page = new_page(chrome, server.url)
    try:
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        assert "visionserve" in page.text_content(".swagger-ui .info .title")
        assert page.locator(".opblock-summary-path", has_text="/faces").count() >= 1
        page.locator(".opblock-summary-path", has_text="/faces").first.click()  # an operation opened
        page.wait_for_selector(".opblock-body")
        assert not page.violations, f"the Swagger UI broke its Content-Security-Policy: {page.violations}"
        assert not [e for e in page.errors if "Content Security Policy" in e], page.errors
    finally:
        page.context.close()


@browser_test
def test_the_page_filter_smooths_as_the_python_client_does(page):
    """The same answers, in the same order, through clients/smoothing.py and smoothing.js."""
    from clients.smoothing import FaceSmoother

    def face(x: float, y: float, width: float, jitter: float) -> dict:
        points = [{"name": f"p{i}", "x": x + 3 * i + jitter, "y": y + 2 * i - jitter} for i in range(15)]
        return {"box": {"x": x, "y": y, "width": width, "height": width * 1.2}, "score": 0.9, "keypoints": points}

    frames = []
    for i in range(40):
        t = i / 15
        faces = [face(100 + 4 * i, 80, 120, (-1) ** i * 1.5)]  # walks right, jittering
        if i < 25 or i > 34:  # a second face, away for 0.6 s (forgotten), then back
            faces.append(face(400, 90 + (i % 3), 60, 0.5 * (-1) ** i))
        frames.append((faces, t))
    frames.append((frames[-1][0], frames[-1][1]))  # a time that does not advance

    smoother = FaceSmoother()
    python = [smoother(faces, t) for faces, t in frames]
    js = page.evaluate(
        """async (frames) => {
            const { FaceSmoother } = await import(new URL("page/smoothing.js", location.href));
            const smoother = new FaceSmoother();
            return frames.map(([faces, t]) => smoother.smooth(faces, t));
        }""",
        frames,
    )
    assert len(js) == len(python)
    for ours, theirs in zip(js, python, strict=True):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert a["box"] == pytest.approx(b["box"], abs=0.011)
            assert [k["name"] for k in a["keypoints"]] == [k["name"] for k in b["keypoints"]]
            xy = lambda face: [v for k in face["keypoints"] for v in (k["x"], k["y"])]
            assert xy(a) == pytest.approx(xy(b), abs=0.011)
