"""The demo page (service/page/) in a real Chromium: the helpers tests/test_page.py shares, and the
screenshots in docs/.

    .venv/bin/python tests/page_browser.py            # docs/page_faces.png, page_webcam.png, page_digits.png

Chromium is Debian's (`apt-get install chromium`), driven by Playwright from PyPI; Playwright's
own browser download is never used. The camera is Chromium's fake one, fed from a .y4m video made
here from docs/examples/face.jpg.
"""

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

TESTS = Path(__file__).resolve().parent
# Run as a script: the test helpers, and bench/ (no installed package) from the checkout.
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from service_models import ROOT, write_models  # noqa: E402

from bench.processes import Server  # noqa: E402
from bench.samples import EXAMPLES  # noqa: E402
from vision.manifest import DEFAULT_PATH  # noqa: E402

CHROMIUM_NAMES = ("chromium", "chromium-browser")
VIEWPORT = {"width": 1100, "height": 820}
# Strokes on the 280x280 pad, in pad pixels: a 1, slightly slanted as a hand writes it, and a 7.
ONE_STROKE = [(150, 52), (146, 100), (142, 150), (138, 200), (135, 232)]
SEVEN_STROKE = [(78, 66), (140, 62), (204, 60), (186, 100), (164, 150), (146, 200), (134, 236)]


def chromium() -> str | None:
    """The system Chromium, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def playwright_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs Playwright (pip install playwright: the dev extra)"
    if chromium() is None:
        return "needs Chromium on the PATH (apt-get install chromium)"
    return None


def write_y4m(path: Path, frames: int = 30, size: tuple[int, int] = (640, 480), fps: int = 15) -> Path:
    """A webcam-like clip for Chromium's fake camera: docs/examples/face.jpg on a soft background,
    drifting left and right, as raw YUV 4:2:0 in a .y4m file."""
    width, height = size
    face = cv2.imread(str(EXAMPLES / "face.jpg"))
    scale = 0.8 * height / face.shape[0]
    face = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:height, 0:width]
    backdrop = np.stack([150 + 40 * xx / width, 140 + 30 * yy / height, 120 + 20 * xx / width], axis=-1).astype(
        np.uint8
    )
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = backdrop.copy()
            x = (width - face.shape[1]) // 2 + int(60 * np.sin(2 * np.pi * i / frames))
            y = (height - face.shape[0]) // 2
            frame[y : y + face.shape[0], x : x + face.shape[1]] = face
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def manifest(folder: Path) -> tuple[Path, bool]:
    """The shipped models' manifest when there is one (True), else stand-ins written into `folder`
    (False): YuNet is real in both, so faces are found either way; digits are read right only by
    the real models."""
    if DEFAULT_PATH.exists():
        return DEFAULT_PATH, True
    return write_models(folder / "models"), False


@contextlib.contextmanager
def serving(folder: Path):
    """(a ready `python -m service` on a free port, real models?); stopped on the way out."""
    path, real = manifest(folder)
    server = Server({"VISION_MANIFEST": str(path)}, folder / "serve.log")
    try:
        server.wait_ready()
        yield server, real
    finally:
        server.stop()


@contextlib.contextmanager
def browser(video: Path | None = None):
    """Chromium (headless, the system's) with a fake camera that plays `video`, if given."""
    from playwright.sync_api import sync_playwright

    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium(), args=args)
        try:
            yield chrome
        finally:
            chrome.close()


# Every Content-Security-Policy violation the page meets (an inline script or style, a host the
# policy does not list): the browser fires `securitypolicyviolation` on the document. The listener
# is an init script, which runs before the page's own and is not subject to its policy.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.reportCspViolation(`${e.effectiveDirective} refused ${e.blockedURI || "inline"} (${where})`);
});
"""


def new_page(chrome, url: str):
    """A fresh page at `url` with the camera allowed; the page's console errors are collected in
    page.errors, its Content-Security-Policy violations (on this page and any it goes to) in
    page.violations. The policy forbids eval, so `page.wait_for_function` takes a function
    ("() => ..."), which Playwright calls as is, never a bare expression, which it evals."""
    context = chrome.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.grant_permissions(["camera"], origin=url)
    page = context.new_page()
    page.errors, page.violations = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.expose_function("reportCspViolation", lambda text: page.violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.goto(url)
    page.wait_for_selector('#status[data-state="ready"]')
    return page


def draw_on_pad(page, stroke: list[tuple[int, int]]) -> None:
    """Draw `stroke` (pad pixels) on the Digits pad with real pointer events (the mouse)."""
    pad = page.locator("#digits-pad").bounding_box()
    sx, sy = pad["width"] / 280, pad["height"] / 280
    page.mouse.move(pad["x"] + stroke[0][0] * sx, pad["y"] + stroke[0][1] * sy)
    page.mouse.down()
    for x, y in stroke[1:]:
        page.mouse.move(pad["x"] + x * sx, pad["y"] + y * sy, steps=4)
    page.mouse.up()


def screenshots(out: Path) -> list[Path]:
    """docs/page_faces.png, page_webcam.png and page_digits.png from a real server and Chromium."""
    done = []
    with tempfile.TemporaryDirectory(prefix="vision-page-") as tmp:
        tmp = Path(tmp)
        video = write_y4m(tmp / "faces.y4m")
        with serving(tmp) as (server, _), browser(video) as chrome:
            page = new_page(chrome, server.url)
            page.set_input_files("#faces-file", str(EXAMPLES / "group.jpg"))
            page.wait_for_selector("#faces-summary[data-faces]")
            point = page.evaluate("visionPage.faces.points[2]")  # hover a point: its name shows
            box = page.locator("#faces-canvas").bounding_box()
            page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
            page.wait_for_selector("#faces-tip:not([hidden])")
            done.append(shot(page, out / "page_faces.png"))

            page.click("#tab-webcam")
            page.click("#webcam-start")
            page.wait_for_function("() => Number(document.getElementById('webcam-stats').dataset.withFace) >= 20")
            done.append(shot(page, out / "page_webcam.png"))
            page.click("#tab-faces")  # stops the camera

            page.click("#tab-digits")
            draw_on_pad(page, SEVEN_STROKE)
            page.wait_for_selector("#digits-answer[data-digit]")
            done.append(shot(page, out / "page_digits.png"))
    return done


def shot(page, path: Path) -> Path:
    """A full-page screenshot as a 256-colour dithered PNG: about a third of the bytes, photos intact."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    return path


if __name__ == "__main__":
    if why := playwright_missing():
        sys.exit(f"page_browser: {why}")
    for path in screenshots(ROOT / "docs"):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
