"""`python -m bench` without a service: one line, non-zero exit. (Its run against a real service
is in test_clients.py, which has one.)"""

import io
import json
import os
import subprocess
import sys

import httpx
import numpy as np
from paths import ROOT

from bench.processes import free_port


def bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "VISION_URL"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bench_says_nothing_answers_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    for done in (bench("--url", url), bench(env={"VISION_URL": url})):
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr.strip() == (
            f"error: nothing answers at {url}: start the service with `make serve`, or pass --url (or set VISION_URL)"
        )


def test_bench_refuses_a_url_without_scheme():
    done = bench("--url", "localhost:3000")
    assert done.returncode != 0 and done.stderr.strip() == (
        "error: bad service URL 'localhost:3000': expected e.g. http://127.0.0.1:3000"
    )


def test_bench_help_names_the_command():
    done = bench("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m bench ")


def test_webcam_bench_measures_local_mode_and_smoothing(tmp_path):
    """A short run of `python -m bench.webcam` without a service: the numbers it reports exist
    and are sane (the figures themselves belong in docs/benchmarks.md, not in a test)."""
    out = tmp_path / "webcam.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.webcam", "--no-service", "--frames", "60", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert (
        list(results["fps"]) == ["--local, pipelined (--in-flight 3)"]
        and results["fps"]["--local, pipelined (--in-flight 3)"]["frames"] == 60
    )
    still = results["smoothing"]["still_jitter_px"]
    assert still["smoothed"] < still["raw"]  # the filter quiets a still face
    assert all(lag > 0 for lag in results["smoothing"]["lag_frames"].values())  # and trails a moving one
    assert "still-face jitter" in done.stdout


def test_webcam_bench_says_nothing_answers_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "bench.webcam", "--url", url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and done.stderr.strip().startswith(f"error: nothing answers at {url}")


def test_the_flask_alternatives_answer_as_the_service_does(tmp_path):
    """bench.compare is fair only if the hand-written apps do the service's work: same answers."""
    from bench.alternatives import create_app
    from bench.processes import Server
    from bench.samples import DIGIT, PHOTO, framed

    frame = framed(PHOTO, 640, 480)
    server = Server({"VISION_PROVIDER": "cpu", "VISION_WORKERS": "1"}, tmp_path / "serve.log")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            served_digit = http.post("/digit", files={"image": ("d.png", DIGIT.read_bytes())}).json()
            served_faces = http.post("/faces", files={"image": ("f.jpg", frame)}).json()
    finally:
        server.stop()
    for backend in ("onnx", "torch"):
        app = create_app(backend).test_client()
        digit = app.post("/digit", data={"image": (io.BytesIO(DIGIT.read_bytes()), "d.png")}).get_json()
        faces = app.post("/faces", data={"image": (io.BytesIO(frame), "f.jpg")}).get_json()
        assert digit["digit"] == served_digit["digit"]
        assert np.allclose(digit["probabilities"], served_digit["probabilities"], atol=1e-4)
        assert [f["box"] for f in faces["faces"]] == [f["box"] for f in served_faces["faces"]]
        ours, theirs = (
            np.array([[k["x"], k["y"]] for f in a["faces"] for k in f["keypoints"]]) for a in (served_faces, faces)
        )
        assert np.abs(ours - theirs).max() < 0.05  # torch and onnxruntime agree to rounding
        refused = app.post("/digit", data={"image": (io.BytesIO(b"hello"), "d.png")})
        assert refused.status_code == 400 and "not an image" in refused.get_json()["error"]


def test_compare_runs_and_writes_results_and_plot(tmp_path):
    """A short run of `python -m bench.compare` on the Flask app alone (the service's own run is
    docs/benchmarks.md's): the JSON, the plot and the table come out."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--servers", "flask-onnx", "--seconds", "0.3"]
        + ["--concurrency", "1", "2", "--cold-starts", "0", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "compare.json").read_text())
    cells = results["servers"]["flask-onnx"]
    assert set(cells["/digit"]) == {"1", "2"} and cells["/faces"]["1"]["answered"] > 0
    assert all(
        cell["errors"] == 0 for endpoint in ("/digit", "/faces", "/digits_array") for cell in cells[endpoint].values()
    )
    assert results["ceiling"]["digits_cnn"]["batch_64_images_per_s"] > 0
    faces = results["ceiling"]["faces"]
    assert min(faces["batch_1_images_per_s"], faces["yunet_onnxruntime_per_s"], faces["yunet_opencv_dnn_per_s"]) > 0
    assert "- ceiling faces: /faces's work in-process on one thread" in done.stdout
    assert (tmp_path / "compare.png").stat().st_size > 10_000 and "| `/digit` | flask-onnx |" in done.stdout


def test_the_generated_benchmark_table_matches_the_results_it_was_made_from():
    """docs/benchmarks.md's table between the markers is `bench.compare --docs` output for
    bench/results/compare.json: a hand edit of either shows here."""
    from bench.compare import BENCHMARKS_DOC, MARKERS, RESULTS, summary

    begin, end = MARKERS
    generated = BENCHMARKS_DOC.read_text().split(begin, 1)[1].split(end, 1)[0].strip()
    assert generated == summary(json.loads((RESULTS / "compare.json").read_text()))


def test_write_docs_replaces_only_the_marked_table(tmp_path):
    from bench.compare import MARKERS, BenchError, write_docs

    begin, end = MARKERS
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"intro\n{begin}\nold table\n{end}\nafter\n")
    write_docs("new table", doc)
    assert doc.read_text() == f"intro\n{begin}\nnew table\n{end}\nafter\n"
    doc.write_text("no markers here\n")
    try:
        write_docs("new table", doc)
    except BenchError as e:
        assert "benchmarks.md has no" in str(e)
    else:
        raise AssertionError("a document without the markers must be refused")
