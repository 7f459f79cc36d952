"""Live facial keypoints over a webcam (or any video), from the service's /faces answers.

    python -m clients.webcam                                  # camera 0, in a window
    python -m clients.webcam --source clip.mp4 --out overlay.mp4 --jsonl faces.jsonl --no-window
    python -m clients.webcam --local                          # no server: the models in-process
    python -m clients.webcam --no-track                       # detect on every frame

Frames are JPEG-encoded and posted to POST /faces with up to --in-flight requests at once, so
capture, the network, the model and drawing overlap; each answer is drawn on the frame it belongs
to. Faces are followed (clients/tracking.py): YuNet runs every --detect-every frames, when a face's
points look wrong or its region changes abruptly (a cut), and the frames between are sent with the
boxes that the last answer's keypoints give, so the service only predicts, and only the part of
the frame that cutting those boxes' crops reads is encoded and sent; --no-track detects on every
frame. Each face has an `id` that stays with it while it is in view and is never reused in a
run. A video file is processed whole and in order. A camera's frames that arrive while the client is
busy are dropped, so the picture stays live. Keypoints are smoothed per face with a One Euro
filter (on by default for cameras; --smooth/--no-smooth). If the service goes away the overlay says
so and the client retries with backoff: a camera's frames pass through unannotated meanwhile, a
file waits (up to --patience seconds) so that no frame goes unanswered. A busy service (503 with
Retry-After: it sheds load) is not queued on: a camera's frames pass through unannotated, unasked,
until the Retry-After has passed (counted as "shed" in the summary); a file waits the Retry-After
and sends the frame again (up to --patience seconds), so every frame is still answered, in order.

Outputs: a window (Tk; `q` or Escape closes it), --out VIDEO (the source's frame rate, 30 fps when
it reports none), --jsonl FILE (one line per frame: {"frame", "t", "faces"}, faces as /faces gives
them with each face's "id", in frame pixels, smoothed when smoothing is on). Ctrl-C or the end of the source stops it
with a summary line. The service is --url, else $VISION_URL, else http://127.0.0.1:3000; its API
key, if it wants one, --api-key, else $VISION_API_KEY.
"""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from clients.answers import Face
from clients.api import (
    API_KEY_HELP,
    URL_HELP,
    AsyncVisionClient,
    ServiceBusy,
    ServiceError,
    ServiceUnreachable,
    service_url,
)
from clients.overlay import draw_faces
from clients.smoothing import BETA, MIN_CUTOFF_HZ, FaceSmoother
from clients.tracking import DETECT_EVERY, Plan, Tracker
from vision.given_boxes import given_detections, region_read

FALLBACK_FPS = 30.0  # the output video's frame rate when the source reports none (cameras often say 0)
IN_FLIGHT = 3  # requests at once: enough to overlap the round trip on 2 cores, few enough to stay live
JPEG_QUALITY = 85
PATIENCE_S = 60.0  # how long a video file waits for a service that went away
MAX_BACKOFF_S = 4.0


class NoDisplay(RuntimeError):
    """No window can be opened here (no display, or no Tk)."""


@dataclass
class Frame:
    index: int  # from 0, in the source
    t: float  # seconds into the source (a camera: since the first frame)
    image: np.ndarray


# --- sources -----------------------------------------------------------------------------------


def open_capture(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise ServiceError(f"cannot open video source {source!r}")
    return capture


def source_fps(capture: cv2.VideoCapture) -> float:
    """The source's frame rate, or FALLBACK_FPS when it reports 0, NaN or nonsense."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps <= 1000 else FALLBACK_FPS


class FileFrames:
    """Every frame of a video file, in order, as fast as they are asked for."""

    live = False

    def __init__(self, capture: cv2.VideoCapture, fps: float):
        self.capture, self.fps, self.index, self.dropped = capture, fps, 0, 0
        self._reading = threading.Lock()  # a capture must not be released in the middle of a read

    def _read(self) -> tuple[bool, np.ndarray | None]:
        with self._reading:
            return self.capture.read() if self.capture.isOpened() else (False, None)

    async def next(self) -> Frame | None:
        ok, image = await asyncio.to_thread(self._read)
        if not ok:
            return None
        frame = Frame(self.index, self.index / self.fps, image)
        self.index += 1
        return frame

    def close(self) -> None:
        with self._reading:
            self.capture.release()


class LiveFrames:
    """A camera (or a file played at its frame rate, --realtime): a thread keeps reading, and
    `next()` gives the newest frame; the frames nobody asked for in time are counted as dropped."""

    live = True

    def __init__(self, capture: cv2.VideoCapture, fps: float, paced: bool):
        self.capture, self.fps, self.paced = capture, fps, paced
        self.dropped, self._taken = 0, -1
        self._newest: Frame | None = None
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        started, index = time.monotonic(), 0
        while True:
            ok, image = self.capture.read()
            now = time.monotonic() - started
            if self.paced:  # a file stands in for a camera: deliver each frame at its time
                time.sleep(max(0.0, index / self.fps - now))
                now = index / self.fps
            with self._changed:
                if not ok or self._ended:
                    self._ended = True
                    self._changed.notify_all()
                    return
                self._newest = Frame(index, now, image)
                self._changed.notify_all()
            index += 1

    def _wait_newest(self) -> Frame | None:
        with self._changed:
            self._changed.wait_for(lambda: self._ended or (self._newest and self._newest.index > self._taken))
            frame = self._newest if self._newest and self._newest.index > self._taken else None
            if frame is not None:
                self.dropped += frame.index - self._taken - 1
                self._taken = frame.index
            return frame

    async def next(self) -> Frame | None:
        return await asyncio.to_thread(self._wait_newest)

    def close(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()
        self._thread.join(timeout=5)  # at most one more read: a camera frame, or one of the file
        self.capture.release()


# --- answers -----------------------------------------------------------------------------------


@dataclass
class Outage:
    """The service went away: since when, and when to try again (exponential backoff)."""

    since: float | None = None
    retry_at: float = 0.0
    tries: int = 0

    def failed(self, now: float) -> None:
        if self.since is None:
            self.since = now
        self.retry_at = now + min(0.25 * 2**self.tries, MAX_BACKOFF_S)
        self.tries += 1

    def over(self) -> float | None:
        """Ends the outage; how long it lasted, or None if there was none."""
        lasted = None if self.since is None else time.monotonic() - self.since
        self.since, self.tries = None, 0
        return lasted


@dataclass
class Answer:
    frame: Frame
    faces: list[Face] | None  # None: the service could not be asked (an outage), or was busy (shed)
    round_trip: float | None  # seconds, request sent to answer read
    shed: bool = False  # a camera's frame not asked about: the service was busy (503, Retry-After)
    plan: Plan | None = None  # detect, or follow the tracks with these boxes


class ServiceFaces:
    """Frames -> /faces answers, through the service; rides out outages and a busy service (see
    the module's doc)."""

    def __init__(self, client: AsyncVisionClient, live: bool, patience: float, stop: asyncio.Event):
        self.client, self.live, self.patience, self.stop = client, live, patience, stop
        self.outage = Outage()
        self.busy_until = 0.0  # a 503's Retry-After: no request before this (time.monotonic())

    @property
    def status(self) -> str | None:
        if self.outage.since is not None:
            return f"service unreachable at {self.client.url}: retrying"
        if self.busy_until > time.monotonic():
            return "service busy: frames skipped"
        return None

    async def __call__(self, frame: Frame, plan: Plan) -> Answer:
        image, boxes, corner = (frame.image, None, (0, 0)) if plan.detect else followed_region(frame.image, plan.boxes)
        jpeg = await asyncio.to_thread(encode_jpeg, image)
        busy_since = None
        while not self.stop.is_set():
            now = time.monotonic()
            retry_at = self.outage.retry_at if self.outage.since is not None else 0.0
            if max(retry_at, self.busy_until) > now:
                if self.live:  # pass through unasked; a later frame tries again
                    return Answer(frame, None, None, shed=self.busy_until > now, plan=plan)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), max(retry_at, self.busy_until) - now)
                continue
            started = time.perf_counter()
            try:
                answer = await self.client.faces(jpeg, boxes=boxes)
            except ServiceUnreachable:
                self._failed()
                continue
            except ServiceBusy as e:  # shed: a camera skips frames for Retry-After, a file waits it out
                busy_since = busy_since or now
                if not self.live and now - busy_since > self.patience:
                    busy = f"the service at {self.client.url} has been busy for {self.patience:g} s"
                    raise ServiceBusy(busy, e.retry_after) from None
                self.busy_until = time.monotonic() + e.retry_after
                continue
            self._recovered()
            faces = [face.moved(*corner) for face in answer.faces]  # in the frame's pixels
            return Answer(frame, faces, time.perf_counter() - started, plan=plan)
        return Answer(frame, None, None, plan=plan)

    def _failed(self) -> None:
        now = time.monotonic()
        if self.outage.since is None:
            self.outage.failed(now)
            print(f"webcam: {self.status}", file=sys.stderr, flush=True)
            return
        if not self.live and now - self.outage.since > self.patience:
            raise ServiceUnreachable(f"the service at {self.client.url} has been unreachable for {self.patience:g} s")
        self.outage.failed(now)

    def _recovered(self) -> None:
        lasted = self.outage.over()
        if lasted is not None:
            print(f"webcam: the service answers again, after {lasted:.1f} s", file=sys.stderr, flush=True)


class LocalAnswers:
    """Frames -> /faces-like answers from the models in this process (--local)."""

    status = None

    def __init__(self):
        from clients.local import LocalFaces

        self.faces = LocalFaces()

    async def __call__(self, frame: Frame, plan: Plan) -> Answer:
        started = time.perf_counter()
        answer = await asyncio.to_thread(self.faces, frame.image, plan.boxes)
        return Answer(frame, list(answer.faces), time.perf_counter() - started, plan=plan)


def followed_region(image: np.ndarray, boxes: list[dict]) -> tuple[np.ndarray, list[dict], tuple[int, int]]:
    """A followed frame -> (the part of it that cutting the boxes' crops reads, the boxes in its
    pixels, its corner in the frame). Sending that part instead of the whole frame gives the same
    crops (vision.given_boxes.region_read) for a smaller JPEG to encode, send and decode."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = region_read(given_detections(boxes), width, height)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), moved_boxes(boxes, -x0, -y0), (x0, y0)


def moved_boxes(boxes: list[dict], dx: float, dy: float) -> list[dict]:
    """/faces `boxes` entries (with their eyes, if any) moved by (dx, dy) pixels."""
    out = []
    for box in boxes:
        box = {**box, "x": box["x"] + dx, "y": box["y"] + dy}
        if box.get("eyes") is not None:
            box["eyes"] = [[x + dx, y + dy] for x, y in box["eyes"]]
        out.append(box)
    return out


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes()


# --- outputs -----------------------------------------------------------------------------------


@dataclass
class Stats:
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0  # from the start to finish()
    dropped: int = 0  # a camera's frames that were never asked about
    frames: int = 0
    unanswered: int = 0  # an outage's frames that passed through
    shed: int = 0  # frames the busy service was not asked about (a camera's, during a Retry-After)
    round_trips: list[float] = field(default_factory=list)
    detected: int | None = None  # frames sent for detection, when following faces
    recent: deque = field(default_factory=lambda: deque(maxlen=30))  # finish times of the last frames

    def add(self, answer: Answer) -> None:
        self.frames += 1
        self.recent.append(time.perf_counter())
        if answer.shed:
            self.shed += 1
        elif answer.round_trip is None:
            self.unanswered += 1
        else:
            self.round_trips.append(answer.round_trip)

    @property
    def fps_now(self) -> float:
        span = self.recent[-1] - self.recent[0] if len(self.recent) > 1 else 0.0
        return (len(self.recent) - 1) / span if span > 0 else 0.0

    def finish(self, dropped: int) -> "Stats":
        self.seconds, self.dropped = time.perf_counter() - self.started, dropped
        return self

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def round_trip_ms(self, percentile: float) -> float | None:
        return float(np.percentile(self.round_trips, percentile) * 1000) if self.round_trips else None

    def summary(self) -> str:
        line = f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} FPS)"
        if self.round_trips:
            line += f", round trip p50 {self.round_trip_ms(50):.0f} ms, p95 {self.round_trip_ms(95):.0f} ms"
        line += f", {self.dropped} dropped, {self.unanswered} unanswered, {self.shed} shed"
        return line if self.detected is None else line + f", detected on {self.detected}"


def draw_status(image: np.ndarray, answer: Answer, stats: Stats, status: str | None) -> None:
    """The face count, FPS and round trip in the corner; a red line while the service is away."""
    if answer.faces is None:
        label, colour = status or "no answer", (0, 0, 255)
    else:
        trip = f"{answer.round_trip * 1000:.0f} ms" if answer.round_trip is not None else "-"
        label, colour = f"{len(answer.faces)} face(s)  {stats.fps_now:4.1f} fps  {trip}", (0, 255, 255)
    cv2.putText(image, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)


def open_writer(out: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(out), fourcc, fps, size)
    if not writer.isOpened():
        raise ServiceError(f"cannot write the video {out} (try .avi or .mp4, in a folder that exists)")
    return writer


class Window:
    """A minimal Tk window that shows BGR frames."""

    def __init__(self, title: str):
        try:
            import tkinter

            from PIL import ImageTk
        except ImportError as e:
            raise NoDisplay(f"no window without Tk ({e}): use --no-window with --out or --jsonl") from None

        self._image_tk = ImageTk
        self._tcl_error = tkinter.TclError
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError:  # no $DISPLAY, or one that cannot be opened
            raise NoDisplay("no display: use --no-window with --out or --jsonl") from None
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.open = True
        self.root.bind("<Key>", lambda e: self.close() if e.keysym in ("q", "Escape") else None)
        self.root.protocol("WM_DELETE_WINDOW", self.close)

    def show(self, frame: np.ndarray) -> None:
        from PIL import Image

        try:
            photo = self._image_tk.PhotoImage(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
            self.label.configure(image=photo)
            self.label.image = photo  # Tk keeps no reference of its own
            self.root.update()
        except self._tcl_error:  # the window went away under us
            self.open = False

    def close(self) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(self._tcl_error):
                self.root.destroy()


class Outputs:
    """Where each annotated frame goes: the window, the video file, the JSON lines."""

    def __init__(self, window: Window | None, out: Path | None, jsonl: Path | None, fps: float = FALLBACK_FPS):
        self.window, self.out, self.fps = window, out, fps
        self.writer: cv2.VideoWriter | None = None
        self.lines = None
        if jsonl is not None:
            try:
                self.lines = jsonl.open("w", buffering=1)  # line by line: it can be followed live
            except OSError as e:
                raise ServiceError(f"cannot write {jsonl}: {e.strerror or e}") from None

    @property
    def closed(self) -> bool:
        return self.window is not None and not self.window.open

    def write(self, answer: Answer, image: np.ndarray | None) -> None:
        if self.lines is not None:
            faces = None if answer.faces is None else [face.as_json() for face in answer.faces]
            record = {"frame": answer.frame.index, "t": round(answer.frame.t, 4), "faces": faces}
            self.lines.write(json.dumps(record) + "\n")
        if image is None:
            return
        if self.out is not None:
            if self.writer is None:
                self.writer = open_writer(self.out, self.fps, (image.shape[1], image.shape[0]))
            self.writer.write(image)
        if self.window is not None and self.window.open:
            self.window.show(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.lines is not None:
            self.lines.close()
        if self.window is not None:
            self.window.close()


# --- the pipeline ------------------------------------------------------------------------------


@dataclass
class Options:
    source: str = "0"
    url: str | None = None
    api_key: str | None = None  # None: $VISION_API_KEY
    out: Path | None = None
    jsonl: Path | None = None
    window: bool = True
    frames: int = 0  # stop after this many (0: the whole source)
    in_flight: int = IN_FLIGHT
    smooth: bool | None = None  # None: on for cameras, off for files
    min_cutoff: float = MIN_CUTOFF_HZ
    beta: float = BETA
    local: bool = False
    realtime: bool = False  # play a file at its frame rate, as if it were a camera
    patience: float = PATIENCE_S
    track: bool = True  # follow faces between detections (False: --no-track, detect on every frame)
    detect_every: int = DETECT_EVERY


async def run(options: Options) -> Stats:
    """Annotate frames until the source ends, the window closes, Ctrl-C or --frames."""
    title = "keypoints - " + ("local models" if options.local else str(options.url))
    outputs = Outputs(Window(title) if options.window else None, options.out, options.jsonl)  # no display fails fast
    capture, client, frames, stop = None, None, None, asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Ctrl-C: stop, and still say the summary
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        capture = open_capture(options.source)
        outputs.fps = source_fps(capture)
        live = options.source.isdigit() or options.realtime
        frames = LiveFrames(capture, outputs.fps, options.realtime) if live else FileFrames(capture, outputs.fps)
        if options.local:
            answers = LocalAnswers()
        else:
            # retries=0: outages are ridden out below
            client = AsyncVisionClient(options.url, timeout=10.0, retries=0, api_key=options.api_key)
            answers = ServiceFaces(client, live, options.patience, stop)
        smooth = live if options.smooth is None else options.smooth
        smoother = FaceSmoother(options.min_cutoff, options.beta) if smooth else None
        tracker = Tracker(options.detect_every, follow=options.track)
        return await annotate(frames, answers, smoother, outputs, options, stop, tracker)
    finally:
        if frames is not None:
            frames.close()  # and the capture with it, once no read is under way
        elif capture is not None:
            capture.release()
        outputs.close()
        if client is not None:
            await client.aclose()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def annotate(
    frames, answers, smoother, outputs: Outputs, options: Options, stop: asyncio.Event, tracker: Tracker
) -> Stats:
    """The pipeline: up to --in-flight frames are being answered while the next is read, and the
    answers are shown in frame order. Each frame is planned (detect, or follow with boxes) from the
    answers shown before it is sent."""
    stats, pending, reading, ended = Stats(), deque(), None, False
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set() and not outputs.closed:
            wanted = options.frames == 0 or stats.frames + len(pending) < options.frames
            if reading is None and not ended and wanted and len(pending) < options.in_flight:
                reading = asyncio.create_task(frames.next())
            waiting = [task for task in (reading, pending[0] if pending else None) if task is not None]
            if not waiting:
                break  # the source ended (or --frames were read) and every answer is shown
            await asyncio.wait([*waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
            if reading is not None and reading.done():
                frame, reading = reading.result(), None
                if frame is None:
                    ended = True
                else:
                    pending.append(asyncio.create_task(answers(frame, tracker.plan(frame.index, frame.image))))
            while pending and pending[0].done():
                show(pending.popleft().result(), smoother, outputs, stats, answers.status, tracker)
    finally:
        for task in (*pending, reading, stopping):
            if task is not None:
                task.cancel()
    if tracker.follow:
        stats.detected = tracker.stats.detections
    return stats.finish(frames.dropped)


def show(
    answer: Answer,
    smoother: FaceSmoother | None,
    outputs: Outputs,
    stats: Stats,
    status: str | None,
    tracker: Tracker | None = None,
) -> None:
    """One answered frame: give its faces their ids, smooth them, count it, draw it, send it to
    every output."""
    if tracker is not None and answer.plan is not None:
        if answer.faces is None:
            tracker.unanswered(answer.plan)
        else:
            answer.faces = tracker.update(answer.plan, answer.frame.image, answer.faces)
    if smoother is not None and answer.faces is not None:
        answer.faces = smoother(answer.faces, answer.frame.t)
    stats.add(answer)
    image = None
    if outputs.out is not None or outputs.window is not None:
        image = answer.frame.image
        if answer.faces is not None:
            draw_faces(image, answer.faces)
        draw_status(image, answer, stats, status)
    outputs.write(answer, image)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clients.webcam", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="0", help="camera index or video file (default 0)")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--api-key", metavar="KEY", help=API_KEY_HELP)
    parser.add_argument("--local", action="store_true", help="run the models in this process, without the service")
    parser.add_argument("--out", type=Path, help="write the annotated frames to this video file")
    parser.add_argument("--jsonl", type=Path, help="write one JSON line per frame (frame, t, faces) to this file")
    parser.add_argument("--no-window", action="store_true", help="no window (headless); use with --out or --jsonl")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help=f"requests at once (default {IN_FLIGHT})")
    parser.add_argument(
        "--smooth",
        action=argparse.BooleanOptionalAction,
        help="One Euro smoothing of boxes and keypoints (default: on for cameras, off for files)",
    )
    parser.add_argument("--min-cutoff", type=float, default=MIN_CUTOFF_HZ, help="smoothing of a still face, Hz")
    parser.add_argument("--beta", type=float, default=BETA, help="how much speed reduces smoothing (lag)")
    parser.add_argument(
        "--realtime", action="store_true", help="play a video file at its frame rate, as a camera (drops frames)"
    )
    parser.add_argument(
        "--patience", type=float, default=PATIENCE_S, help="seconds a file waits for a service that went away"
    )
    parser.add_argument("--no-track", action="store_true", help="detect faces on every frame instead of following them")
    parser.add_argument(
        "--detect-every",
        type=int,
        default=DETECT_EVERY,
        metavar="N",
        help=f"while following faces, detect every N frames (default {DETECT_EVERY})",
    )
    args = parser.parse_args(argv)
    if args.no_window and args.out is None and args.jsonl is None:
        parser.exit(2, "error: --no-window needs --out or --jsonl, or nothing would be seen\n")
    if args.in_flight < 1 or args.frames < 0 or args.min_cutoff <= 0 or args.beta < 0 or args.patience < 0:
        parser.exit(2, "error: --in-flight must be >= 1; --frames, --beta, --patience >= 0; --min-cutoff > 0\n")
    if args.detect_every < 1:
        parser.exit(2, "error: --detect-every must be >= 1\n")
    options = Options(
        source=args.source,
        url=args.url or service_url(),
        api_key=args.api_key,
        out=args.out,
        jsonl=args.jsonl,
        window=not args.no_window,
        frames=args.frames,
        in_flight=args.in_flight,
        smooth=args.smooth,
        min_cutoff=args.min_cutoff,
        beta=args.beta,
        local=args.local,
        realtime=args.realtime,
        patience=args.patience,
        track=not args.no_track,
        detect_every=args.detect_every,
    )
    try:
        stats = asyncio.run(run(options))
    except (ServiceError, NoDisplay) as e:
        sys.exit(f"error: {e}")
    print(stats.summary() + "".join(f" -> {p}" for p in (args.out, args.jsonl) if p is not None))


if __name__ == "__main__":
    main()
