"""`bentoml build` from bentofile.yaml, in a temporary BENTOML_HOME and a copy of the project with
stand-in models: what the bento holds, and the Containerfile `bentoml containerize` would use.
The opt-in `buildah` test builds that image for real and asks it for /readyz."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from service_models import ROOT, free_port, write_models

from vision.manifest import read_manifest, verified_model

BIN = ROOT / ".venv" / "bin"


def run(command: list[str], env: dict, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(bento directory, tag, environment) for a bento built from a copy of the project."""
    tmp = tmp_path_factory.mktemp("bento")
    ctx = tmp / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("service", "vision"):
        shutil.copytree(ROOT / folder, ctx / folder, ignore=ignore)
    shutil.copy(ROOT / "bentofile.yaml", ctx / "bentofile.yaml")
    write_models(ctx / "models")
    # Things that must stay out of the bento.
    (ctx / "models" / "keypoints.pt").write_bytes(b"a torch checkpoint")
    (ctx / "training").mkdir()
    (ctx / "training" / "train.py").write_text("import torch\n")
    (ctx / "tests").mkdir()
    (ctx / "tests" / "test_x.py").write_text("")

    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp / "bentoml_home"),
        "VISION_MANIFEST": str(ctx / "models" / "manifest.json"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `bentoml build` needs uv
        "BENTOML_DO_NOT_TRACK": "true",
    }
    bentoml = str(BIN / "bentoml") if (BIN / "bentoml").exists() else "bentoml"
    out = run([bentoml, "build", str(ctx), "--output", "tag"], env, ctx)
    tag = re.search(r"__tag__:(\S+)", out).group(1)
    name, version = tag.split(":")
    return tmp / "bentoml_home" / "bentos" / name / version, tag, env


def test_the_bento_holds_the_service_vision_and_verified_models_only(built):
    bento, tag, _ = built
    src = {str(p.relative_to(bento / "src")) for p in (bento / "src").rglob("*") if p.is_file()}
    assert {
        "service/service.py",
        "service/images.py",
        "service/runtime.py",
        "vision/faces.py",
        "vision/manifest.py",
    } <= src
    assert {f"models/{n}.onnx" for n in ("digits_cnn", "digits_mlp", "keypoints")} | {"models/manifest.json"} <= src
    assert {
        "models/yunet/face_detection_yunet_2023mar.onnx",
        "models/yunet/LICENSE",
    } <= src  # the detector, licence beside it
    assert not [p for p in src if p.startswith(("training/", "tests/")) or p.endswith((".pt", ".pyc"))], src
    manifest = bento / "src" / "models" / "manifest.json"
    for name in read_manifest(manifest)["models"]:
        verified_model(name, manifest)  # the copies in the bento still match their hashes
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "service.service:Vision"


def test_the_bento_pins_its_packages_and_has_no_torch(built):
    bento, _, _ = built
    requirements = [
        line.strip()
        for line in (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements and all("==" in line for line in requirements), requirements
    names = {re.split(r"[=<>\[]", line)[0].lower() for line in requirements}
    assert not {"torch", "torchvision", "onnxruntime"} & names  # GPU build only: the two share one folder
    assert {"bentoml", "onnxruntime-gpu", "opencv-python-headless", "pillow", "numpy"} <= names
    for py in (bento / "src").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+torch\b", py.read_text(), re.M), py


def test_the_containerfile_is_a_cuda_cudnn9_image(built, tmp_path):
    _, tag, env = built
    out = tmp_path / "Containerfile"
    code = (
        "import sys, bentoml; "
        "bentoml.container.get_containerfile(sys.argv[1], output_path=sys.argv[2], enable_buildkit=False)"
    )
    run([sys.executable, "-c", code, tag, str(out)], env, tmp_path)
    text = out.read_text()
    assert re.search(r"^FROM nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", text, re.M), text[:800]
    assert "python3.11" in text
    assert re.search(r'VISION_PROVIDER.?=.?"?auto', text)
    assert "torch" not in text


# --- opt-in: the real image, built with buildah -------------------------------------------------------


@pytest.mark.buildah
@pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")
def test_the_image_builds_and_answers_readyz(built, tmp_path):
    bento, tag, env = built
    containerfile = tmp_path / "Containerfile"
    code = (
        "import sys, bentoml; "
        "bentoml.container.get_containerfile(sys.argv[1], output_path=sys.argv[2], enable_buildkit=False)"
    )
    run([sys.executable, "-c", code, tag, str(containerfile)], env, tmp_path)
    # buildah does not resolve Docker Hub short names without a registries.conf alias.
    text = re.sub(r"^FROM (?![\w.-]+\.\w+/)", "FROM docker.io/", containerfile.read_text(), flags=re.M)
    containerfile.write_text(text)
    storage = ["--storage-driver", "vfs", "--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run")]
    image = "localhost/vision:test"
    run(
        ["buildah", *storage, "bud", "--isolation", "chroot", "-f", str(containerfile), "-t", image, str(bento)],
        env,
        tmp_path,
        timeout=3600,
    )
    container = run(["buildah", *storage, "from", image], env, tmp_path).strip()
    port = free_port()
    serve = subprocess.Popen(
        [
            "buildah",
            *storage,
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            container,
            "--",
            "bentoml",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and serve.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            log = serve.stdout.read().decode()[-3000:] if serve.poll() is not None else ""
            pytest.fail(f"the container did not become ready:\n{log}")
        info = httpx.post(f"http://127.0.0.1:{port}/info", timeout=30).json()
        assert info["providers"]
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)
        subprocess.run(["buildah", *storage, "rm", container], capture_output=True)
