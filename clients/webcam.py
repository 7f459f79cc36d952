"""Live facial keypoints over a webcam (or any video), from the service's /faces answers.

    python -m clients.webcam                              # camera 0, shown in a window
    python -m clients.webcam --source clip.mp4 --out overlay.mp4 --no-window

Each frame is JPEG-encoded and sent to POST /faces; the boxes and 15 keypoints that come back are
drawn on the frame. The window uses Tk (Python's own GUI), since opencv-python-headless has none;
`q` or Escape closes it.
"""

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from clients.api import DEFAULT_URL, ServiceError, VisionClient
from clients.overlay import draw_faces


def open_source(source: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise ServiceError(f"cannot open video source {source!r}")
    return capture


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
        import tkinter

        from PIL import ImageTk

        self._image_tk = ImageTk
        self.root = tkinter.Tk()
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.open = True
        self.root.bind("<Key>", lambda e: self.close() if e.keysym in ("q", "Escape") else None)
        self.root.protocol("WM_DELETE_WINDOW", self.close)

    def show(self, frame: np.ndarray) -> None:
        from PIL import Image

        photo = self._image_tk.PhotoImage(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        self.label.configure(image=photo)
        self.label.image = photo  # Tk keeps no reference of its own
        self.root.update()

    def close(self) -> None:
        self.open = False
        self.root.destroy()


def run(source: str, url: str, out: Path | None, window: bool, max_frames: int) -> int:
    """Annotate frames until the source ends, the window closes or max_frames; returns frames done."""
    capture, writer, view = open_source(source), None, None
    done, fps, started = 0, 0.0, time.perf_counter()
    try:
        with VisionClient(url) as client:
            view = Window(f"keypoints - {url}") if window else None
            while (not max_frames or done < max_frames) and (view is None or view.open):
                ok, frame = capture.read()
                if not ok:
                    break
                frame, _ = annotate(client, frame, fps)
                done += 1
                fps = done / (time.perf_counter() - started)
                if out is not None:
                    if writer is None:
                        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out.suffix == ".mp4" else "MJPG"))
                        writer = cv2.VideoWriter(str(out), fourcc, 15, (frame.shape[1], frame.shape[0]))
                    writer.write(frame)
                if view is not None and view.open:
                    view.show(frame)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="0", help="camera index or video file (default 0)")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    parser.add_argument("--out", type=Path, help="also write the annotated frames to this video file")
    parser.add_argument("--no-window", action="store_true", help="no window (headless machines); use with --out")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    args = parser.parse_args(argv)
    if args.no_window and args.out is None:
        sys.exit("error: --no-window needs --out, or nothing would be seen")
    try:
        done = run(args.source, args.url, args.out, not args.no_window, args.frames)
    except ServiceError as e:
        sys.exit(f"error: {e}")
    except ImportError as e:
        sys.exit(f"error: no window without Tk ({e}); use --no-window --out FILE")
    print(f"annotated {done} frames" + (f" into {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
