"""The CPU image, built and run for real: `make image-test` (= `pytest -m buildah tests/test_image.py`).

Opt-in (the `buildah` marker, deselected by default): it runs `deploy/image/build.sh` (what `make image`
runs: the base from Debian packages where no registry answers, `bentoml build -f bentofile-cpu.yaml`,
`bentoml containerize --backend buildah`), starts the image with podman on the host network and a free
port, waits for /readyz, and posts photos and digits to it and to a local `bentoml serve` of the same
models: the answers must match. Then it stops and removes the container; the image stays
(`localhost/vision:cpu`, or $VISION_IMAGE). Needs root (or rootless podman), buildah, podman, and
network access to PyPI and a Debian mirror for the build. It prints image size, build time, cold
start and the container's RSS.
"""

import json
import shutil
import subprocess
import time

import httpx
import pytest
from deployment import IMAGE, PODMAN, RUN_OPTIONS, build_image, podman, print_report
from service_models import ROOT

from bench.processes import Server, ServerFailed, free_port, wait_ready
from bench.samples import EXAMPLES

pytestmark = [
    pytest.mark.buildah,
    pytest.mark.skipif(
        not (shutil.which("buildah") and shutil.which("podman")), reason="needs buildah and podman (apt-get install)"
    ),
]

FACE_PHOTOS = [
    EXAMPLES / "face.jpg",
    EXAMPLES / "group.jpg",
    *sorted((ROOT / "tests" / "fixtures" / "faces" / "images").glob("*.jpg"))[:2],
]
DIGITS = [EXAMPLES / "digit.png", EXAMPLES / "digit_on_paper.jpg"]
REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield REPORT
    print_report(request, "image", REPORT)


@pytest.fixture(scope="module")
def image():
    build_image(REPORT)
    info = json.loads(podman("image", "inspect", IMAGE))[0]
    REPORT["image size"] = f"{info['Size'] / 1e6:.0f} MB"
    return info


@pytest.fixture(scope="module")
def container(image):
    """(url, container id): the image on the host network and a free port, until the module ends."""
    port = free_port()
    start = time.monotonic()
    # --read-only: the root filesystem as Kubernetes' readOnlyRootFilesystem has it; podman keeps /tmp
    # writable (a tmpfs), where the image's BENTOML_HOME is.
    cid = podman(
        "run", "-d", "--read-only", "--network", "host", *RUN_OPTIONS, "-e", f"PORT={port}", IMAGE, "serve"
    ).strip()
    url = f"http://127.0.0.1:{port}"
    try:
        running = lambda: podman("inspect", "--format", "{{.State.Running}}", cid).strip() == "true"
        try:
            wait_ready(url, 300, alive=running)
        except ServerFailed:
            pytest.fail(f"the container did not become ready:\n{podman('logs', cid, check=False)[-4000:]}")
        REPORT["cold start to /readyz"] = f"{time.monotonic() - start:.1f} s (podman run to the first 200)"
        yield url, cid
    finally:
        stop_start = time.monotonic()
        podman("stop", "--time", "30", cid, check=False)
        REPORT["podman stop"] = f"{time.monotonic() - stop_start:.1f} s"
        podman("rm", "--force", cid, check=False)
    assert cid not in podman("ps", "--all", "--quiet", "--no-trunc")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A local `bentoml serve` (python -m service) of the same shipped models."""
    server = Server({}, tmp_path_factory.mktemp("local") / "serve.log", timeout=180)
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def close(a, b, path="") -> list[str]:
    """Where two JSON answers differ beyond float noise (onnxruntime 1.31 in the image, the local one
    may be newer): a list of paths, empty when they match."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in close(x, y, f"{path}[{i}]")]
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return [] if abs(a - b) <= 1e-3 * max(1.0, abs(a), abs(b)) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def post(url: str, route: str, path, **fields) -> httpx.Response:
    return httpx.post(f"{url}/{route}", files={"image": (path.name, path.read_bytes())}, data=fields, timeout=60)


def test_the_container_answers_like_a_local_bentoml_serve(container, local):
    url, _ = container
    identical = 0
    cases = [("faces", p, {}) for p in FACE_PHOTOS] + [
        ("digit", p, {"model": m}) for p in DIGITS for m in ("cnn", "mlp")
    ]
    cases.append(("keypoints", EXAMPLES / "face_crop.png", {}))
    for route, path, fields in cases:
        ours, theirs = post(url, route, path, **fields), post(local, route, path, **fields)
        assert ours.status_code == theirs.status_code == 200, (route, path.name, ours.text[:300], theirs.text[:300])
        assert not close(ours.json(), theirs.json()), (route, path.name, close(ours.json(), theirs.json())[:5])
        identical += ours.content == theirs.content
    faces = post(url, "faces", EXAMPLES / "group.jpg").json()["faces"]
    assert len(faces) == 5  # the five people of docs/examples/group.jpg
    assert post(url, "digit", EXAMPLES / "digit.png").json()["digit"] == 7
    REPORT["answers"] = f"{len(cases)} requests match the local server ({identical} byte for byte)"


def test_the_container_runs_as_a_user_with_no_torch_and_no_training_code(container, image):
    _, cid = container
    assert image["Config"]["User"] == "bentoml"
    assert podman("exec", cid, "id", "-u").strip() != "0"
    assert "BENTOML_HOME=/tmp/bentoml" in image["Config"]["Env"]  # deploy/image/build.sh
    written = subprocess.run([*PODMAN, "exec", cid, "touch", "/home/bentoml/x"], capture_output=True, text=True)
    assert written.returncode != 0 and "Read-only file system" in written.stderr  # it runs on a read-only root
    code = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'training') if u.find_spec(m)])"
    assert podman("exec", cid, "python", "-c", code).strip() == "[]"
    files = podman("exec", cid, "find", "/home/bentoml/bento/src", "-type", "f").split()
    assert files and not [f for f in files if "/training/" in f or "/tests/" in f or f.endswith((".pt", ".pth"))]
    providers = httpx.get(f"{container[0]}/info", timeout=10).json()["providers"]
    assert providers == ["CPUExecutionProvider"]


def test_the_health_checks_are_livez_and_readyz(container, image):
    url, cid = container
    assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    check = image["Healthcheck"]["Test"]  # podman's inspect: top level, beside Config
    assert "/readyz" in " ".join(check), check
    assert subprocess.run([*PODMAN, "healthcheck", "run", cid], capture_output=True, timeout=30).returncode == 0


def test_memory_of_the_container_processes(container):
    """After the answers above: the RSS of each process in the container (podman top)."""
    _, cid = container
    rows = [line.split(None, 2) for line in podman("top", cid, "pid", "rss", "args").splitlines()[1:]]
    rss = {
        f"{args.split()[0].rsplit('/', 1)[-1]} {' '.join(args.split()[1:3])} ({pid})": int(kib)
        for pid, kib, args in rows
    }
    REPORT["RSS"] = "; ".join(f"{name}: {kib / 1024:.0f} MiB" for name, kib in rss.items())
    REPORT["RSS total"] = f"{sum(rss.values()) / 1024:.0f} MiB"
    assert any("_bentoml_impl.worker.service" in name for name in rss), rss
    assert sum(rss.values()) < 1536 * 1024  # under the Deployment's memory limit (deploy/k8s)
