"""Benchmarks of a running service (start it first: `make serve`), on this machine's loopback only.

    python -m bench [--url http://127.0.0.1:3000] [--seconds 10]

The service is --url, else $VISION_URL, else http://127.0.0.1:3000. Measures, each loop bounded
in time and count:
- sequential latency of /digit (docs/examples/digit.png, 28x28), /number (docs/examples/
  number_on_paper.jpg, 5 underlined digits, as shipped and enlarged to a phone photo's 4032
  pixels) and /faces (docs/examples/face.jpg, Grace Hopper, one face, placed in a 640x480
  webcam-sized frame and in a 3000x2000 photo), with each detector (YuNet, the default, and Haar);
- /faces on the 640x480 frame with `boxes` (the box /faces found there, as a tracker sends it:
  no detection) against the same frame detected with YuNet: p50 each and their ratio; and the
  request the webcam client sends for a followed frame: only the region the box's crop reads;
- /digits_array throughput with 1 vs 32 concurrent clients each sending one image, which shows
  BentoML's adaptive batching merging concurrent requests into one onnxruntime call.
"""

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np

from bench.samples import DIGIT, NUMBER, PHONE_WIDTH, PHOTO, BenchError, enlarged, framed, sample
from clients.answers import Face
from clients.api import URL_HELP, ServiceError, checked_url, service_url, unreachable_message
from clients.webcam import encode_jpeg, followed_region


def timed(call, seconds: float, max_calls: int) -> list[float]:
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(times) < max_calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float]) -> float:
    """Print one line of figures; return the p50 in ms."""
    ms = sorted(t * 1000 for t in times)
    p50, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
    print(f"{label:<44} n={len(ms):>5}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {len(ms) / (sum(ms) / 1000):8.1f} req/s")
    return p50


BOXES_TARGET = 0.4  # /faces with a given box, as a fraction of /faces detecting (issue 26)


def given_box_against_detection(http: httpx.Client, seconds: float) -> None:
    """/faces on the 640x480 frame with the box /faces found there given back (no detection),
    against the same frame detected with YuNet: the two requests alternate, so that a slow spell
    of the machine weighs on both alike."""
    photo = framed(PHOTO, 640, 480)
    response = http.post("/faces", files={"image": ("p.jpg", photo)})
    response.raise_for_status()
    found = response.json()["faces"]
    if len(found) != 1:
        raise BenchError(f"/faces found {len(found)} faces in the 640x480 frame of {PHOTO.name}, not 1")
    boxes = [Face.from_json(found[0]).given_box()]
    region, region_boxes, _ = followed_region(cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR), boxes)
    requests = {  # kind -> (JPEG, form)
        "detected": (photo, {}),
        "given": (photo, {"boxes": json.dumps(boxes)}),
        "region": (encode_jpeg(region), {"boxes": json.dumps(region_boxes)}),
    }
    times = {kind: [] for kind in requests}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(times["given"]) < 2000:
        for kind, (jpeg, form) in requests.items():
            start = time.perf_counter()
            http.post("/faces", files={"image": ("p.jpg", jpeg)}, data=form).raise_for_status()
            times[kind].append(time.perf_counter() - start)
    detected = report("POST /faces (640x480 JPEG, detected, alt.)", times["detected"])
    given = report("POST /faces (640x480 JPEG, box given, alt.)", times["given"])
    height, width = region.shape[:2]
    in_region = report(f"POST /faces ({width}x{height} region, given, alt.)", times["region"])
    print(
        f"/faces 640x480, box given vs detected: p50 {given:.2f} vs {detected:.2f} ms"
        f" = {given / detected:.2f}x (target <= {BOXES_TARGET}x); as the webcam client sends it (the region):"
        f" {in_region / detected:.2f}x"
    )


def throughput(url: str, clients: int, seconds: float, payload: dict) -> tuple[float, int, int]:
    """(answered requests per second, answered, shed): 503 is BentoML shedding load it cannot
    answer within the endpoint's max latency; anything else non-2xx is an error."""
    deadline = time.perf_counter() + seconds

    def worker(_):
        done = shed = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.perf_counter() < deadline and done + shed < 10_000:
                response = http.post("/digits_array", json=payload)
                if response.status_code == 503:
                    shed += 1
                    continue
                response.raise_for_status()
                done += 1
        return done, shed

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        counts = list(pool.map(worker, range(clients)))
    done, shed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return done / (time.perf_counter() - start), done, shed


def batch_totals(http: httpx.Client, method: str) -> tuple[float, float]:
    """(requests, onnxruntime calls) so far for one batchable method, from BentoML's /metrics."""
    totals = {"sum": 0.0, "count": 0.0}
    for line in http.get("/metrics").text.splitlines():
        for kind in totals:
            if line.startswith(f"bentoml_service_adaptive_batch_size_{kind}") and f'method_name="{method}"' in line:
                totals[kind] += float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


def run(url: str, seconds: float) -> None:
    http = httpx.Client(base_url=url, timeout=30)
    status = http.get("/readyz").status_code
    if status != 200:
        raise BenchError(f"{url} answers but is not ready (/readyz: {status}); wait, or read the service's log")

    digit, digit_size = sample(DIGIT)
    sample(PHOTO)  # a clear error if the example is missing
    report(
        f"POST /digit ({digit_size} PNG), sequential",
        timed(lambda: http.post("/digit", files={"image": ("d.png", digit)}).raise_for_status(), seconds, 5000),
    )
    number, number_size = sample(NUMBER)
    for label, photo in ((number_size, number), (f"{PHONE_WIDTH} px wide", enlarged(NUMBER, PHONE_WIDTH))):
        report(
            f"POST /number ({label} JPEG, 5 digits)",
            timed(
                lambda photo=photo: http.post("/number", files={"image": ("n.jpg", photo)}).raise_for_status(),
                seconds,
                2000,
            ),
        )
    for width, height in ((640, 480), (3000, 2000)):
        photo = framed(PHOTO, width, height)
        for detector in ("yunet", "haar"):
            report(
                f"POST /faces ({width}x{height} JPEG, 1 face, {detector})",
                timed(
                    lambda photo=photo, detector=detector: http.post(
                        "/faces", files={"image": ("p.jpg", photo)}, data={"detector": detector}
                    ).raise_for_status(),
                    seconds,
                    2000,
                ),
            )
    given_box_against_detection(http, seconds)
    payload = {"images": np.random.default_rng(0).random((1, 1, 28, 28)).round(3).tolist()}
    for clients in (1, 32):
        requests_before, calls_before = batch_totals(http, "digits_array")
        rate, total, shed = throughput(url, clients, seconds, payload)
        requests, calls = (a - b for a, b in zip(batch_totals(http, "digits_array"), (requests_before, calls_before)))
        print(
            f"POST /digits_array, 1 image each, {clients:>2} concurrent clients: {rate:8.1f} req/s"
            f" ({total} answered, {shed} shed with 503; {requests / max(calls, 1):.1f} requests per onnxruntime call)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = parser.parse_args(argv)
    try:
        url = checked_url(args.url or service_url())
        run(url, args.seconds)
    except (BenchError, ServiceError) as e:
        sys.exit(f"error: {e}")
    except (httpx.ConnectError, httpx.ConnectTimeout):
        sys.exit(f"error: {unreachable_message(url)}")
    except httpx.HTTPStatusError as e:
        sys.exit(f"error: {e.request.method} {e.request.url.path} answered {e.response.status_code}")
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        sys.exit(f"error: {url}: {' '.join(str(e).split()) or type(e).__name__}")
    except KeyboardInterrupt:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
