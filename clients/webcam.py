"""Live facial keypoints over a webcam (or any video), from the service's /faces answers.

    python -m clients.webcam                              # camera 0, shown in a window
    python -m clients.webcam --source clip.mp4 --out overlay.mp4 --no-window

Each frame is JPEG-encoded and sent to POST /faces; the boxes and 15 keypoints that come back are
drawn on the frame. The window uses Tk (Python's own GUI), since opencv-python-headless has none;
`q` or Escape closes it. Without a display (ssh, containers) use --no-window --out FILE. The video
written by --out has the source's frame rate (30 fps when the source reports none, as cameras
often do), one output frame per source frame. The service is --url, else $VISION_URL, else
http://127.0.0.1:3000.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from clients.api import URL_HELP, ServiceError, VisionClient, service_url
from clients.overlay import draw_faces

# The output video's frame rate when the source reports none (cameras often say 0).
FALLBACK_FPS = 30.0


class NoDisplay(RuntimeError):
    """No window can be opened here (no display, or no Tk)."""


def open_source(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise ServiceError(f"cannot open video source {source!r}")
    return capture


def source_fps(capture: cv2.VideoCapture) -> float:
    """The source's frame rate, or FALLBACK_FPS when it reports 0, NaN or nonsense."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps <= 1000 else FALLBACK_FPS


def open_writer(out: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(out), fourcc, fps, size)
    if not writer.isOpened():
        raise ServiceError(f"cannot write the video {out} (try .avi or .mp4, in a folder that exists)")
    return writer


def annotate(client: VisionClient, frame: np.ndarray, fps: float) -> tuple[np.ndarray, int]:
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    answer = client.faces(jpeg.tobytes())
    draw_faces(frame, answer)
    label = f"{len(answer['faces'])} face(s)  {fps:4.1f} fps"
    cv2.putText(frame, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2, cv2.LINE_AA)
    return frame, len(answer["faces"])


class Window:
    """A minimal Tk window that shows BGR frames."""

    def __init__(self, title: str):
        try:
            import tkinter

            from PIL import ImageTk
        except ImportError as e:
            raise NoDisplay(f"no window without Tk ({e}): use --no-window --out FILE") from None

        self._image_tk = ImageTk
        self._tcl_error = tkinter.TclError
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError:  # no $DISPLAY, or one that cannot be opened
            raise NoDisplay("no display: use --no-window --out FILE") from None
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


def run(source: str, url: str, out: Path | None, window: bool, max_frames: int) -> int:
    """Annotate frames until the source ends, the window closes or max_frames; returns frames done."""
    view = Window(f"keypoints - {url}") if window else None  # first, so that no display fails fast
    capture, writer = None, None
    done, fps, started = 0, 0.0, time.perf_counter()
    try:
        capture = open_source(source)
        out_fps = source_fps(capture)
        with VisionClient(url) as client:
            while (not max_frames or done < max_frames) and (view is None or view.open):
                ok, frame = capture.read()
                if not ok:
                    break
                frame, _ = annotate(client, frame, fps)
                done += 1
                fps = done / (time.perf_counter() - started)
                if out is not None:
                    if writer is None:
                        writer = open_writer(out, out_fps, (frame.shape[1], frame.shape[0]))
                    writer.write(frame)
                if view is not None and view.open:
                    view.show(frame)
    finally:
        if capture is not None:
            capture.release()
        if writer is not None:
            writer.release()
        if view is not None:
            view.close()
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clients.webcam", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="0", help="camera index or video file (default 0)")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--out", type=Path, help="also write the annotated frames to this video file")
    parser.add_argument("--no-window", action="store_true", help="no window (headless machines); use with --out")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    args = parser.parse_args(argv)
    if args.no_window and args.out is None:
        sys.exit("error: --no-window needs --out, or nothing would be seen")
    try:
        done = run(args.source, args.url or service_url(), args.out, not args.no_window, args.frames)
    except (ServiceError, NoDisplay) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # what was written so far is kept: run() releases the writer
        sys.exit("interrupted")
    print(f"annotated {done} frames" + (f" into {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
