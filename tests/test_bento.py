"""`bentoml build` from bentofile.yaml (GPU) and bentofile-cpu.yaml (CPU), in a temporary BENTOML_HOME
and a copy of the project with stand-in models: what the bentos hold, and the Containerfiles
`bentoml containerize` would use. tests/test_image.py (opt-in: `make image-test`) builds and runs
the CPU image for real."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from service_models import ROOT, write_models

from vision.manifest import read_manifest, verified_model

BIN = ROOT / ".venv" / "bin"


def run(command: list[str], env: dict, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def build_bento(tmp, bentofile: str) -> tuple[Path, str, dict]:
    """(bento directory, tag, environment) for a bento built from a copy of the project."""
    ctx = tmp / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("service", "vision", "deploy/image"):
        shutil.copytree(ROOT / folder, ctx / folder, ignore=ignore)
    shutil.copy(ROOT / bentofile, ctx / bentofile)
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
    out = run([bentoml, "build", "-f", bentofile, str(ctx), "--output", "tag"], env, ctx)
    tag = re.search(r"__tag__:(\S+)", out).group(1)
    name, version = tag.split(":")
    return tmp / "bentoml_home" / "bentos" / name / version, tag, env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The GPU bento (bentofile.yaml)."""
    return build_bento(tmp_path_factory.mktemp("bento"), "bentofile.yaml")


@pytest.fixture(scope="module")
def built_cpu(tmp_path_factory):
    """The CPU bento (bentofile-cpu.yaml)."""
    return build_bento(tmp_path_factory.mktemp("bento_cpu"), "bentofile-cpu.yaml")


def containerfile(built, tmp_path) -> str:
    _, tag, env = built
    out = tmp_path / "Containerfile"
    code = (
        "import sys, bentoml; "
        "bentoml.container.get_containerfile(sys.argv[1], output_path=sys.argv[2], enable_buildkit=False)"
    )
    run([sys.executable, "-c", code, tag, str(out)], env, tmp_path)
    return out.read_text()


def requirement_names(bento: Path) -> set[str]:
    requirements = [
        line.strip()
        for line in (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements and all("==" in line for line in requirements), requirements
    return {re.split(r"[=<>\[]", line)[0].lower() for line in requirements}


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
        "models/yunet/face_detection_yunet_2023mar_dynamic.onnx",
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
    names = requirement_names(bento)
    assert not {"torch", "torchvision", "onnxruntime"} & names  # GPU build only: the two share one folder
    runtime = {"bentoml", "onnxruntime-gpu", "opencv-python-headless", "pillow", "pillow-heif", "numpy"}
    assert runtime | {"httptools", "uvloop"} <= names
    for py in (bento / "src").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+torch\b", py.read_text(), re.M), py


def test_the_containerfile_is_a_cuda_cudnn9_image(built, tmp_path):
    text = containerfile(built, tmp_path)
    assert re.search(r"^FROM nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", text, re.M), text[:800]
    assert "python3.11" in text
    assert re.search(r'VISION_PROVIDER.?=.?"?auto', text)
    assert re.search(r"^USER bentoml", text, re.M)
    assert "torch" not in text


# --- the CPU variant ---------------------------------------------------------------------------


def test_the_cpu_and_gpu_bentofiles_differ_only_in_the_marked_lines():
    """One file each (BentoML has no includes), but the same bento apart from onnxruntime and the base."""
    gpu_text, cpu_text = (ROOT / "bentofile.yaml").read_text(), (ROOT / "bentofile-cpu.yaml").read_text()
    gpu, cpu = yaml.safe_load(gpu_text), yaml.safe_load(cpu_text)
    assert gpu["python"]["packages"][-1] == cpu["python"]["packages"][-1].replace("onnxruntime==", "onnxruntime-gpu==")
    assert gpu["docker"].pop("cuda_version") and cpu["docker"].pop("setup_script") == "deploy/image/slim.sh"
    gpu["python"]["packages"].pop(), cpu["python"]["packages"].pop()
    assert gpu == cpu
    # Line by line: apart from comments, only the lines marked "GPU only" / "CPU only" differ.
    code = lambda text: [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    marked = lambda lines: [line for line in lines if "only" not in line and "onnxruntime" not in line]
    assert marked(code(gpu_text)) == marked(code(cpu_text))


def test_the_cpu_bento_has_onnxruntime_for_the_cpu_and_the_same_files(built, built_cpu):
    bento, _, _ = built_cpu
    names = requirement_names(bento)
    assert "onnxruntime" in names and not {"onnxruntime-gpu", "torch", "torchvision"} & names
    assert names - {"onnxruntime"} == requirement_names(built[0]) - {"onnxruntime-gpu"}
    files = lambda b: {str(p.relative_to(b / "src")) for p in (b / "src").rglob("*") if p.is_file()}
    assert files(bento) == files(built[0])  # the same service, vision code and models
    envs = yaml.safe_load((bento / "bento.yaml").read_text())["envs"]
    assert {e["name"]: e["value"] for e in envs} == {
        "VISION_PROVIDER": "auto",
        "BENTOML_DO_NOT_TRACK": "true",  # no usage reports from a server
        "ORT_DISABLE_TELEMETRY": "1",
    }


def test_the_cpu_containerfile_is_python_slim_non_root_with_the_environment(built_cpu, tmp_path):
    text = containerfile(built_cpu, tmp_path)
    assert re.search(r"^FROM python:3\.11-slim AS base-container", text, re.M), text[:800]
    assert re.search(r"^ENV VISION_PROVIDER=\$VISION_PROVIDER", text, re.M) and "ARG VISION_PROVIDER=auto" in text
    assert re.search(r"^USER bentoml", text, re.M)
    assert "script__" in text  # deploy/image/slim.sh, run after the Python packages
    assert "torch" not in text and "cuda" not in text.lower()
