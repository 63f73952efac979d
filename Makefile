# Samtalsstöd — the two commands a newcomer needs: `make run` and `make test`.
# Both are idempotent: installs are skipped when their stamp is newer than what they depend on.

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
APPLIANCE   := $(VENV)/bin/appliance
STATE_DIR   ?= var
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: espeak-ng/sox make real Swedish test audio, chromium drives the browser tests, strace
# lists the files the units write (tests/test_finding9_writes.py).
TEST_APT    := espeak-ng sox libsox-fmt-all chromium chromium-driver strace
# Debian packages to build systemd-python (the audit log's journald mirror) when pip installs the appliance;
# alsa-utils gives the recorder unit `arecord` (desk microphones).
# g++ builds llama-cpp-python (the llm unit) from source when no wheel is at hand.
RUN_APT     := gcc g++ pkg-config libsystemd-dev python3-dev alsa-utils
# The box test (tests/test_box.py): a real systemd in systemd-nspawn on a debootstrapped Debian 12 root, the
# office LAN in a network namespace, the firewall in nftables; dpkg-deb builds the package (make deb).
BOX_APT     := systemd-container debootstrap nftables iproute2 dpkg-dev
BOX_CACHE   ?= $(STATE_DIR)/cache/box
STAMP_APT_BOX := $(VENV)/.stamp-apt-box
STAMP_RUN   := $(VENV)/.stamp-run
STAMP_DEV   := $(VENV)/.stamp-dev
STAMP_APT   := $(VENV)/.stamp-apt-test
STAMP_APT_RUN := $(VENV)/.stamp-apt-run
MODELS_OK   := $(STATE_DIR)/models/.embedded-ok
# The Triton server's own virtualenv ([asr] backend = "triton"; tests/test_triton.py, bench/asr_backends.py):
# nvidia-pytriton's tritonserver + faster-whisper with numpy < 2 (its Python-backend stub misreads string tensors
# with numpy 2, which the appliance needs), from models/triton/requirements.txt. Made by the same Python as .venv,
# so the stub loads the same libpython.
TRITON_VENV := .venv-triton
STAMP_TRITON := $(TRITON_VENV)/.stamp-triton
# llama-cpp-python (the llm unit) has no wheel on PyPI: it is built once into WHEELS (keep the version in step
# with pyproject.toml). Built portable (AVX2, no -march=native): a native build on a CPU that reports AMX
# crashed in ggml's AMX kernels on the first token (seen on a 2-core VM), and a box's CPU is not the builder's.
# --no-cache-dir: pip's own wheel cache does not know the build flags and would hand back a native build.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
WHEELS      := $(STATE_DIR)/cache/wheels
LLAMA_WHEEL := $(WHEELS)/.llama-$(LLAMA_VERSION)-portable

.PHONY: run test test-box deb lint install models bench clean-state help triton-venv

help:
	@echo "make run   - install what is needed and start the appliance on https://127.0.0.1:8443"
	@echo "make test  - install test dependencies and run lint, layer check and the whole test suite"
	@echo "make deb   - build samtalsstod_<version>_amd64.deb (offline wheelhouse inside) into dist/"
	@echo "make test-box - the box under a real systemd (nspawn): install the .deb, provision, check (tests/test_box.py)"
	@echo "make bench - ASR overhead, memory, purge-time, diarization (AMI), backend, assistant quality and latency benchmarks (bench/)"

$(PY):
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(LLAMA_WHEEL): | $(PY) $(STAMP_APT_RUN)
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel -q --no-cache-dir --no-deps -w $(WHEELS) \
	    llama-cpp-python==$(LLAMA_VERSION)
	touch $@

# torch first, pinned (its CPU wheel): letting `pip install -e .` resolve it could pull GBs of CUDA packages.
$(STAMP_RUN): pyproject.toml $(STAMP_APT_RUN) $(LLAMA_WHEEL) | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --find-links $(WHEELS) -e .
	touch $@

$(STAMP_DEV): pyproject.toml $(STAMP_RUN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Installs the Debian packages of $(1) that are missing (apt-get update only when something is).
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	touch $@
endef

$(STAMP_APT): | $(PY)
	$(call apt_install,$(TEST_APT))

$(STAMP_APT_RUN): | $(PY)
	$(call apt_install,$(RUN_APT))

$(STAMP_TRITON): models/triton/requirements.txt | $(PY)
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --upgrade pip
	$(TRITON_VENV)/bin/pip install -q -r models/triton/requirements.txt
	touch $@

triton-venv: $(STAMP_TRITON)

$(STAMP_APT_BOX): | $(PY)
	$(call apt_install,$(BOX_APT))

$(MODELS_OK): models/manifest.toml $(STAMP_RUN)
	APPLIANCE_PATHS__STATE_DIR=$(STATE_DIR) $(APPLIANCE) models install-embedded
	touch $@

install: $(STAMP_RUN)
models: $(MODELS_OK)

run: $(STAMP_RUN) $(MODELS_OK)
	APPLIANCE_PATHS__STATE_DIR=$(STATE_DIR) $(APPLIANCE) run

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(STAMP_DEV) $(STAMP_APT) $(MODELS_OK) $(STAMP_TRITON) lint
	TEST_MODEL_STORE=$(abspath $(STATE_DIR))/models $(PY) -m pytest -q -m "not box"

# One boot of the box: builds the .deb and the Debian root (cached in $(BOX_CACHE)) the first time.
test-box: $(STAMP_DEV) $(STAMP_APT) $(STAMP_APT_BOX) $(MODELS_OK)
	BOX_CACHE=$(abspath $(BOX_CACHE)) TEST_MODEL_STORE=$(abspath $(STATE_DIR))/models \
	  $(PY) -m pytest -q -m box tests/test_box.py

deb: $(STAMP_RUN) $(STAMP_APT_BOX)
	packaging/build-deb.sh dist $(BOX_CACHE)/wheelhouse

bench: $(STAMP_DEV) $(STAMP_APT) $(MODELS_OK) $(STAMP_TRITON)
	$(PY) bench/asr_overhead.py
	$(PY) bench/asr_overhead.py --rss
	$(PY) bench/purge.py
	$(PY) bench/search.py
	$(PY) bench/live_latency.py
	$(PY) bench/diarization.py --vad
	$(PY) bench/hallucination.py
	$(PY) bench/interpreted.py
	$(PY) bench/llm_overhead.py
	$(PY) bench/recorder_overhead.py
	$(PY) bench/asr_backends.py
	$(PY) bench/assistant_quality.py
	$(PY) bench/assistant_latency.py

clean-state:
	@echo "This deletes $(STATE_DIR)/ (database, keys, recordings) but keeps the model store."
	find $(STATE_DIR) -mindepth 1 -maxdepth 1 ! -name models ! -name cache -exec rm -rf {} +
