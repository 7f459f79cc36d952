"""Benchmarks of a running service (start it first: `make serve`), on this machine's loopback only.

    python -m bench [--url http://127.0.0.1:3000] [--seconds 10]

Measures, each loop bounded in time and count:
- sequential latency of /digit (a 28x28 PNG) and /faces (matplotlib's Grace Hopper photo, one face);
- /digits_array throughput with 1 vs 32 concurrent clients each sending one image, which shows
  BentoML's adaptive batching merging concurrent requests into one onnxruntime call.
"""

import argparse
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np

from clients.api import DEFAULT_URL


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def sample_photo() -> tuple[bytes, str]:
    try:
        import matplotlib.cbook

        image = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        return cv2.imencode(".jpg", image)[1].tobytes(), f"{image.shape[1]}x{image.shape[0]}"
    except ImportError:
        sys.exit("error: the /faces benchmark uses matplotlib's sample photo; pip install matplotlib")


def timed(call, seconds: float, max_calls: int) -> list[float]:
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(times) < max_calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p50, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
    print(f"{label:<44} n={len(ms):>5}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {len(ms) / (sum(ms) / 1000):8.1f} req/s")


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = parser.parse_args(argv)
    http = httpx.Client(base_url=args.url, timeout=30)
    try:
        if http.get("/readyz").status_code != 200:
            sys.exit(f"error: {args.url} is not ready")
    except httpx.HTTPError:
        sys.exit(f"error: no service at {args.url}; start one with `make serve`")

    digit = png(np.pad(np.full((20, 6), 255, np.uint8), ((4, 4), (11, 11))))
    photo, size = sample_photo()
    report("POST /digit (28x28 PNG), sequential", timed(
        lambda: http.post("/digit", files={"image": ("d.png", digit)}).raise_for_status(), args.seconds, 5000))
    report(f"POST /faces ({size} JPEG, 1 face), sequential", timed(
        lambda: http.post("/faces", files={"image": ("p.jpg", photo)}).raise_for_status(), args.seconds, 2000))
    payload = {"images": np.random.default_rng(0).random((1, 1, 28, 28)).round(3).tolist()}
    for clients in (1, 32):
        requests_before, calls_before = batch_totals(http, "digits_array")
        rate, total, shed = throughput(args.url, clients, args.seconds, payload)
        requests, calls = (a - b for a, b in zip(batch_totals(http, "digits_array"), (requests_before, calls_before)))
        print(f"POST /digits_array, 1 image each, {clients:>2} concurrent clients: {rate:8.1f} req/s"
              f" ({total} answered, {shed} shed with 503; {requests / max(calls, 1):.1f} requests per onnxruntime call)")


if __name__ == "__main__":
    main()
