# Two commands do all set-up: `make serve` and `make test`. Both are idempotent: the stamps below
# re-run pip only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PIP_INSTALL := $(BIN)/python -m pip install --progress-bar on --disable-pip-version-check

TEACHERS_VENV := .venv-teachers
TEACHERS_STAMP := $(TEACHERS_VENV)/.installed
TEACHERS_REQUIREMENTS := training/teachers-requirements.txt

.PHONY: serve test lint bench clean image image-test kube-test teachers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The teachers' own environment (training.teacher_labels, the MediaPipe peer): MediaPipe's wheel
# pulls protobuf < 5 and OpenCV 5, which .venv cannot hold. Training-time only; never in the image.
teachers: $(TEACHERS_STAMP)
$(TEACHERS_STAMP): $(TEACHERS_REQUIREMENTS)
	@echo "make: installing the teachers (MediaPipe, dlib) into $(TEACHERS_VENV): a minute or two, once"
	$(PYTHON) -m venv $(TEACHERS_VENV)
	$(TEACHERS_VENV)/bin/python -m pip install --progress-bar on --disable-pip-version-check -r $(TEACHERS_REQUIREMENTS)
	touch $@

# The runtime: service and clients, onnxruntime on the CPU, no torch.
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing the runtime (service + clients, no torch) into $(VENV): about a minute, once"
	$(PIP_INSTALL) -e '.[cpu]'
	touch $@

# Everything the tests need: runtime + training (torch, onnx) + dev tools.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing runtime + training + test tools into $(VENV): a few minutes, once"
	$(PIP_INSTALL) -e '.[cpu,train,dev]'
	touch $@ $(RUNTIME_STAMP)

# `python -m service` is `bentoml serve service.service:Vision` with a metrics folder of its own
# and a "ready at URL" line once /readyz answers.
serve: $(RUNTIME_STAMP)
	$(BIN)/python -m service --host 127.0.0.1 --port $(PORT)

# The linter first (format and rules in pyproject.toml): a tree that is not clean does not pass.
test: $(DEV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Rewrite the tree as the linter wants it (format, import order, safe fixes).
lint: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Against the service that `make serve` (same PORT) is running.
bench: $(RUNTIME_STAMP)
	$(BIN)/python -m bench --url http://127.0.0.1:$(PORT)

# The container image of the bento, built with `bentoml containerize` (buildah): VARIANT=cpu (default,
# bentofile-cpu.yaml -> localhost/vision:cpu) or VARIANT=gpu (bentofile.yaml -> localhost/vision:gpu,
# needs Docker Hub). Needs buildah and podman, and debootstrap where no registry answers: the CPU
# base is then made from Debian's packages. IMAGE=name:tag names it otherwise. docs/deploy.md.
VARIANT ?= cpu
image: $(RUNTIME_STAMP)
	@test -x $(BIN)/uv || $(PIP_INSTALL) 'uv>=0.4'  # `bentoml build` needs uv
	VARIANT=$(VARIANT) deploy/image/build.sh $(IMAGE)

# Opt-in, a few minutes: builds the CPU image, runs it with podman and compares its answers with a
# local `bentoml serve` (tests/test_image.py). Not part of `make test`.
image-test: $(DEV_STAMP)
	$(BIN)/python -m pytest -m buildah tests/test_image.py

# Opt-in, a few minutes: builds the CPU image and plays deploy/k8s/base's Deployment on it with
# `podman kube play` (securityContext, read-only root, the Secret's keys), then /readyz and /faces
# (tests/test_kube_play.py). Not part of `make test`.
kube-test: $(DEV_STAMP)
	$(BIN)/python -m pytest -m buildah tests/test_kube_play.py

clean:
	rm -rf $(VENV) $(TEACHERS_VENV) build *.egg-info .pytest_cache
