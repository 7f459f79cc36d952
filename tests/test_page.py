"""The demo page at `/` (service/page/), against a real `bentoml serve`.

- Without a browser: the page and its files are served, BentoML's own routes stay where they were,
  the Swagger UI moved to /docs, and every kind of answer carries the security headers (the CSP on
  HTML) and no CORS grant. (The page's constants are generated from Python's and checked by
  tests/test_page_constants.py.)
- In a real Chromium (`browser` marker; skipped without Chromium and Playwright): a photo's faces
  drawn, a digit drawn on the pad and read, a photo of a number, the webcam through Chromium's fake
  camera (faces followed with `boxes`, detected now and then, one id), the service's errors and
  readiness as the page shows them, the JS filter smoothing a sequence of answers exactly as
  clients/smoothing.py does, the JS tracker planning frames and giving ids as clients/tracking.py
  does, both replaying the shared vectors (tests/fixtures/face_vectors.json) as the Python modules
  do, and the overlay's marks sized as vision.draw.mark_sizes sizes them; all with the page's
  Content-Security-Policy on, and any violation of it fails the test.

The server runs the shipped models (models/manifest.json) when they are there, else stand-ins;
YuNet is real in both, so faces are found either way (tests/page_browser.py).
"""

import re
from pathlib import Path

import cv2
import face_vectors
import httpx
import numpy as np
import pytest
from page_browser import EXAMPLES, ONE_STROKE, draw_on_pad, new_page, playwright_missing, serving, write_y4m
from photos import written_number
from service_models import ROOT

from service.images import NOT_AN_IMAGE
from training.mnist import read_idx

PAGE = ROOT / "service" / "page"
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")


def browser_test(test):
    """A test in Chromium: `browser` marker; skipped, with the reason, where it cannot run."""
    skip = pytest.mark.skipif(playwright_missing() is not None, reason=str(playwright_missing()))
    return pytest.mark.browser(skip(test))


# --- the page's files (no browser) ------------------------------------------------------------------


def test_every_page_file_that_is_referenced_exists():
    index = (PAGE / "index.html").read_text() + (PAGE / "docs.html").read_text()
    referenced = set(re.findall(r'(?:href|src)="page/([^"#]+)"', index))
    for script in PAGE.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert {"app.js", "style.css", "smoothing.js", "tracking.js", "constants.js"} <= referenced
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
    assert "% sure" in page.text_content("#faces-tip")  # the point's confidence

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


# Every text the page draws on a canvas (the overlay's labels), collected in window.textsDrawn.
RECORD_CANVAS_TEXT = """() => {
  window.textsDrawn = new Set();
  const fillText = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    window.textsDrawn.add(String(text));
    return fillText.call(this, text, ...rest);
  };
}"""


@browser_test
def test_the_webcam_frames_come_back_with_a_face_and_the_rate_moves(page):
    """The fake camera's one face, followed: most frames go with `boxes` (no detection), one in
    DETECT_EVERY at least goes without (detected), and the face keeps one id, drawn by its box."""
    from clients.tracking import DETECT_EVERY

    posts, answers = [], []  # the /faces requests as they left, and the service's answers
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/faces") and posts.append(r))
    page.on("response", lambda r: r.request.method == "POST" and r.url.endswith("/faces") and answers.append(r))
    page.evaluate(RECORD_CANVAS_TEXT)
    page.click("#tab-webcam")
    page.click("#webcam-start")
    with_face = "Number(document.getElementById('webcam-stats').dataset.withFace)"
    page.wait_for_function(f"() => {with_face} >= 5", timeout=30_000)
    first = page.text_content("#webcam-fps")
    page.wait_for_function(
        f"() => {with_face} >= 3 * {DETECT_EVERY} && document.getElementById('webcam-fps').textContent !== {first!r}",
        timeout=60_000,
    )
    stats = page.evaluate(  # at one moment: another answer may come in at any time
        "() => ({...document.getElementById('webcam-stats').dataset,"
        " shown: document.getElementById('webcam-detected').textContent})"
    )
    labels = page.evaluate("() => [...window.textsDrawn]")
    assert float(page.text_content("#webcam-fps")) > 0
    assert re.fullmatch(r"\d+ ms", page.text_content("#webcam-latency"))
    assert page.text_content("#webcam-faces") == "1"
    assert not page.is_visible("#webcam-error")
    page.click("#tab-faces")  # leaving the view stops the camera
    assert page.text_content("#webcam-start") == "Start the camera"

    assert stats["ids"] == "1", stats  # one face, one id, over the whole run
    assert {label.split(" ")[0] for label in labels} == {"#1"}, labels  # the overlay names it
    detections, given = int(stats["detections"]), int(stats["given"])
    assert detections >= 1 and given >= 2 * detections, stats  # most answered frames were followed
    # What the service did (Chromium shows no multipart body with a Blob in it): a face found by
    # YuNet or from given boxes, in the order sent.
    answers.sort(key=lambda r: posts.index(r.request))
    sent = [any(face["detector"] == "given" for face in r.json()["faces"]) for r in answers]
    assert len(sent) >= 3 * DETECT_EVERY and sent.count(True) >= 2 * sent.count(False), sent
    longest = max(len(run) for run in "".join("b" if boxes else "d" for boxes in sent).split("d"))
    assert longest <= DETECT_EVERY - 1, sent  # a detection at least every DETECT_EVERY frames
    assert stats["shown"] == f"{detections} of {stats['frames']}"


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
    """The same answers, in the same order, through clients/smoothing.py and smoothing.js; faces
    followed by the tracker's ids (a new id in the same place, a cut at frame 12, starts afresh; a
    face away for longer than FORGET_AFTER_S too)."""
    from clients.answers import Face
    from clients.smoothing import FaceSmoother

    def face(x: float, y: float, width: float, jitter: float) -> dict:
        points = [{"name": f"p{i}", "x": x + 3 * i + jitter, "y": y + 2 * i - jitter} for i in range(15)]
        pose = None if round(x) % 7 == 0 else {"yaw": x / 10 - 20 + jitter, "pitch": 3 - jitter, "roll": 2 * jitter}
        box = {"x": x, "y": y, "width": width, "height": width * 1.2}
        return {"box": box, "score": 0.9, "keypoints": points, "pose": pose}

    frames = []
    for i in range(40):
        t = i / 15
        faces = [face(100 + 4 * i, 80, 120, (-1) ** i * 1.5)]  # walks right, jittering
        if i < 25 or i > 34:  # a second face, away for 0.6 s (forgotten), then back
            faces.append(face(400, 90 + (i % 3), 60, 0.5 * (-1) ** i))
        faces = [{**f, "id": n} for f, n in zip(faces, (1 if i < 12 else 3, 2), strict=False)]
        frames.append((faces, t))
    frames.append((frames[-1][0], frames[-1][1]))  # a time that does not advance

    smoother = FaceSmoother()
    python = [[f.as_json() for f in smoother([Face.from_json(f) for f in faces], t)] for faces, t in frames]
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
            assert (a["pose"] is None) == (b["pose"] is None)
            if a["pose"] is not None:
                assert a["pose"] == pytest.approx(b["pose"], abs=0.11)
    assert sum(f["pose"] is None for faces in python for f in faces) > 0  # some frames without a pose
    refused = page.evaluate(
        """async (face) => {
            const { FaceSmoother } = await import(new URL("page/smoothing.js", location.href));
            try { new FaceSmoother().smooth([face], 0); } catch (e) { return e.message; }
            return null;
        }""",
        {k: v for k, v in frames[0][0][0].items() if k != "id"},
    )
    assert refused and "ids" in refused  # a face without its tracker's id, as clients/smoothing.py refuses it


@browser_test
def test_the_page_tracker_and_filter_replay_the_shared_vectors(page):
    """tests/fixtures/face_vectors.json (a clip's real /faces answers) through tracking.js and
    smoothing.js, as tests/test_tracking.py and tests/test_smoothing.py replay it through the Python
    modules: the same plans, ids and smoothed boxes, points and poses."""
    vectors = face_vectors.load()
    replayed = page.evaluate(
        """async (vectors) => {
            const { Tracker } = await import(new URL("page/tracking.js", location.href));
            const { FaceSmoother } = await import(new URL("page/smoothing.js", location.href));
            const [tracker, smoother] = [new Tracker(vectors.detect_every), new FaceSmoother()];
            return vectors.frames.map(({ frame, t, answer }) => {
                const plan = tracker.plan(frame, null);
                const tracked = tracker.update(plan, null, answer);
                return { plan, tracked, smoothed: smoother.smooth(tracked, t) };
            });
        }""",
        vectors,
    )
    outcomes = [
        face_vectors.outcome(js["plan"]["boxes"], js["plan"]["ids"], js["tracked"], js["smoothed"]) for js in replayed
    ]
    face_vectors.assert_replayed(vectors, outcomes)


# --- the tracker's twin and the overlay's sizes, in Chromium -----------------------------------------


def scripted_face(box: tuple[float, float, float, float], jitter: float = 0.0, squashed: bool = False) -> dict:
    """A /faces face whose 15 keypoints sit in `box` (x, y, width, height) as a face's do; `squashed`
    puts every point on one vertical line (eyes 0 apart: the geometry check must refuse it)."""
    from vision.keypoints import KEYPOINT_NAMES

    x, y, width, height = box
    points = []
    for i, name in enumerate(KEYPOINT_NAMES):
        u = 0.32 if "right" in name else 0.68 if "left" in name else 0.5
        u += 0.08 if "right" in name and "inner" in name else -0.08 if "left" in name and "inner" in name else 0
        v = 0.3 if "eyebrow" in name else 0.4 if "eye" in name else 0.6 if "nose" in name else 0.8
        u = 0.5 if squashed else u
        dx, dy = (jitter if i % 2 else -jitter), (jitter if i % 3 else -jitter)
        points.append({"name": name, "x": round(x + u * width + dx, 2), "y": round(y + v * height + dy, 2)})
    return {
        "box": {"x": x, "y": y, "width": width, "height": height},
        "score": 0.9,
        "detector": "yunet",
        "keypoints": points,
    }


def tracking_clip(frames: int = 40):
    """A 320x240 gray clip for the trackers: face A walks right and is replaced by another person
    (the photo upside down) at frame 27, a cut; face B holds still and the detector misses it on
    frames 18-24; at frame 13 A's followed points are nonsense. Returns (images, truth): truth[i]
    is [(box, face, seen by the detector)] per face."""
    photo = cv2.cvtColor(cv2.imread(str(EXAMPLES / "face.jpg")), cv2.COLOR_BGR2GRAY)
    yy, xx = np.mgrid[0:240, 0:320]
    backdrop = (90 + 60 * xx / 320 + 40 * np.sin(yy / 9.0)).astype(np.uint8)
    small = cv2.resize(photo, (60, 72), interpolation=cv2.INTER_AREA)
    images, truth = [], []
    for i in range(frames):
        image = backdrop.copy()
        a = (40.0 + 3 * i, 20.0, 100.0, 120.0)
        face = cv2.resize(photo if i < 27 else cv2.flip(photo, -1), (100, 120), interpolation=cv2.INTER_AREA)
        image[20:140, int(a[0]) : int(a[0]) + 100] = face
        b = (230.0, 150.0, 60.0, 72.0)
        image[150:222, 230:290] = small
        images.append(image)
        jitter = 0.6 * (-1) ** i
        truth.append(
            [(a, scripted_face(a, jitter, squashed=i == 13), True), (b, scripted_face(b, -jitter), not 18 <= i <= 24)]
        )
    return images, truth


def answer_for(boxes: list[dict] | None, truth) -> list[dict]:
    """What /faces would answer: the detector's faces, or one face per given box (its keypoints are
    those of the face under it; its box the given box)."""
    if boxes is None:
        return [face for _, face, seen in truth if seen]
    faces = []
    for given in boxes:
        cx, cy = given["x"] + given["width"] / 2, given["y"] + given["height"] / 2
        _, face, _ = min(truth, key=lambda t: (t[0][0] + t[0][2] / 2 - cx) ** 2 + (t[0][1] + t[0][3] / 2 - cy) ** 2)
        box = {key: given[key] for key in ("x", "y", "width", "height")}
        faces.append({**face, "box": box, "score": given["score"], "detector": "given"})
    return faces


@browser_test
def test_the_page_tracker_plans_and_names_faces_as_the_python_client_does(page):
    """The same clip and the same answers through clients/tracking.py and tracking.js: the same
    frames detected, the same boxes sent, the same ids (a cut gives a new one, a face the detector
    missed for a moment gets its own back), and the same cut-check correlations."""
    import base64

    from clients.answers import Face
    from clients.tracking import Tracker, gray_patch, similarity
    from vision.geometry import Box

    images, truth = tracking_clip()
    page.evaluate(
        """async (frames) => {
            const tracking = await import(new URL("page/tracking.js", location.href));
            const decode = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
            const images = frames.map((f) => ({ width: 320, height: 240, data: decode(f) }));
            window.twin = { tracking, tracker: new tracking.Tracker(), frames: images };
        }""",
        [base64.b64encode(image.tobytes()).decode() for image in images],
    )
    python, seen = Tracker(), []
    for i, image in enumerate(images):
        plan = python.plan(i, image)
        js_plan = page.evaluate("(i) => (window.twin.plan = window.twin.tracker.plan(i, window.twin.frames[i]))", i)
        assert (js_plan["boxes"] is None) == plan.detect, f"frame {i}: {js_plan} vs {plan}"
        assert js_plan["ids"] == plan.ids, f"frame {i}"
        for ours, theirs in zip(js_plan["boxes"] or [], plan.boxes or [], strict=True):
            flat = lambda box: [box[k] for k in ("x", "y", "width", "height", "score")] + sum(box["eyes"], [])
            assert flat(ours) == pytest.approx(flat(theirs), abs=0.011), f"frame {i}"
        faces = answer_for(plan.boxes, truth[i])
        theirs = python.update(plan, image, [Face.from_json(face) for face in faces])
        ours = page.evaluate(
            "([i, faces]) => window.twin.tracker.update(window.twin.plan, window.twin.frames[i], faces)", [i, faces]
        )
        assert [f["id"] for f in ours] == [f.id for f in theirs], f"frame {i}"
        seen.append(("d" if plan.detect else "g", [f.id for f in theirs]))
    stats = page.evaluate("() => window.twin.tracker.stats")
    assert stats == {"frames": 40, "detections": python.stats.detections, "cuts": 1, "implausible": 1}
    assert python.stats.cuts == 1 and python.stats.implausible == 1
    assert seen[0] == ("d", [1, 2]) and seen[14][0] == "d"  # the nonsense at 13 is detected again at 14
    assert [ids for _, ids in seen[25:27]] == [[1], [1]]  # B was missed (lost), A followed
    assert seen[27] == ("d", [2, 3])  # the cut: A's place is a new face's; B got its id back
    assert {i for i, (kind, _) in enumerate(seen) if kind == "d"} <= {0, 10, 14, 24, 27, 34, 37}

    # The cut check itself: correlations of a face's region with its later self and with the cut.
    pairs = [(5, 6, 0), (20, 23, 0), (26, 27, 0), (3, 30, 1), (8, 9, 1)]
    for before, after, which in pairs:
        box = truth[after][which][0]
        python_value = similarity(images[after], Box(*box), gray_patch(images[before], Box(*box)))
        js_value = page.evaluate(
            """([before, after, box]) => {
                const { tracking, frames } = window.twin;
                const [x, y, width, height] = box;
                const patch = tracking.grayPatch(frames[before], { x, y, width, height });
                return tracking.similarity(frames[after], { x, y, width, height }, patch);
            }""",
            [before, after, box],
        )
        assert js_value == pytest.approx(python_value, abs=0.02), (before, after, which)
    assert similarity(images[27], Box(*truth[27][0][0]), gray_patch(images[26], Box(*truth[26][0][0]))) < 0.8


@browser_test
def test_the_page_overlay_sizes_marks_as_vision_draw_does(page):
    """draw.js's markSizes against vision.draw.mark_sizes: lines, points and labels grow with the
    face and never shrink below a share of the image's longer side (Python's rounding included)."""
    from vision.draw import mark_sizes

    shapes = [(240, 320), (600, 512), (314, 1368), (3000, 4000)]
    cases = [(width, shape) for width in (12, 50, 125, 170, 250, 400, 900) for shape in shapes]
    js = page.evaluate(
        """async (cases) => {
            const { markSizes } = await import(new URL("page/draw.js", location.href));
            return cases.map(([width, [height, side]]) => markSizes(width, side, height));
        }""",
        cases,
    )
    for (width, shape), ours in zip(cases, js, strict=True):
        theirs = mark_sizes(width, shape)
        assert (ours["line"], ours["radius"]) == (theirs.line, theirs.radius), (width, shape)
        assert ours["font"] == pytest.approx(theirs.font_scale), (width, shape)


@browser_test
def test_the_page_draws_the_pose_arrow_as_the_python_overlay_does(page):
    """draw.js's noseDirection is vision.pose.nose_direction, and drawFaces draws the arrow from
    the nose tip where the face points (to the image's right for yaw > 0; mirrored on the webcam)."""
    from vision.pose import HeadPose, nose_direction

    poses = [(0, 0, 0), (60, 0, 0), (-35, 20, 10), (10, -40, -25), (80, 10, 90)]
    js = page.evaluate(
        """async (poses) => {
            const draw = await import(new URL("page/draw.js", location.href));
            const directions = poses.map(([yaw, pitch, roll]) => draw.noseDirection({ yaw, pitch, roll }));
            const canvas = document.createElement("canvas");
            const ratio = window.devicePixelRatio || 1;
            const magenta = (mirror) => {
                const context = draw.sizeCanvas(canvas, 400, 400);
                context.clearRect(0, 0, 400, 400);
                const face = { box: { x: 100, y: 100, width: 200, height: 200 }, score: null,
                               keypoints: [{ name: "nose_tip", x: 200, y: 200, confidence: 0.1 }],
                               pose: { yaw: 60, pitch: 0, roll: 0 } };
                draw.drawFaces(context, [face], { scale: 1, width: 400, height: 400, mirror }, { labels: false });
                const columns = [];
                for (let x = 0; x < 400; x += 2) {
                    const [r, g, b] = context.getImageData(x * ratio, 200 * ratio, 1, 1).data;
                    if (r > 200 && g < 60 && b > 200) columns.push(x);
                }
                return columns;
            };
            return { directions, plain: magenta(false), mirrored: magenta(true) };
        }""",
        poses,
    )
    for pose, direction in zip(poses, js["directions"], strict=True):
        assert direction == pytest.approx(nose_direction(HeadPose(*pose)), abs=1e-9)
    reach = 200 * 0.6 * np.sin(np.radians(60))
    assert max(js["plain"]) == pytest.approx(200 + reach, abs=4) and min(js["plain"]) >= 196
    assert min(js["mirrored"]) == pytest.approx(200 - reach, abs=4) and max(js["mirrored"]) <= 204


@browser_test
def test_a_point_the_model_is_unsure_of_is_drawn_as_a_ring(page):
    """draw.js draws a keypoint below vision.keypoints.LOW_CONFIDENCE as a ring in its part's
    colour, the others as dots: the centre of one is painted, of the other not."""
    from vision.keypoints import LOW_CONFIDENCE

    centres = page.evaluate(
        """async ([low]) => {
            const draw = await import(new URL("page/draw.js", location.href));
            const { LOW_CONFIDENCE } = await import(new URL("page/constants.js", location.href));
            const canvas = document.createElement("canvas");
            const context = draw.sizeCanvas(canvas, 400, 400);
            const point = (x, confidence) => ({ name: "nose_tip", x, y: 200, confidence });
            const face = { box: { x: 50, y: 50, width: 300, height: 300 }, score: null,
                           keypoints: [point(100, low + 0.2), point(200, low - 0.2), point(300, null)] };
            draw.drawFaces(context, [face], { scale: 1, width: 400, height: 400 }, { labels: false });
            const ratio = window.devicePixelRatio || 1;
            const at = (x) => Array.from(context.getImageData(x * ratio, 200 * ratio, 1, 1).data);
            return { low: LOW_CONFIDENCE, pixels: [at(100), at(200), at(300)], colour: draw.PART_COLOURS.nose };
        }""",
        [LOW_CONFIDENCE],
    )
    assert centres["low"] == LOW_CONFIDENCE
    nose = [int(centres["colour"][i : i + 2], 16) for i in (1, 3, 5)] + [255]
    sure, unsure, no_confidence = centres["pixels"]
    assert sure == nose and no_confidence == nose  # dots: a point without a confidence is drawn as before
    assert unsure[3] == 0  # a ring: nothing drawn at its centre
