# ckdsnn-events. `make install` sets up .venv; every other target uses it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CKD := $(VENV)/bin/ckd-events
DATA ?= data
WORKERS ?= 2

.PHONY: install test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

test:
	$(PY) -m pytest -q

# The offline demo on the embedded digits-dvs dataset (no download).
demo:
	$(CKD) simulate --out $(DATA)/digits-dvs --workers $(WORKERS)
	$(CKD) preprocess --dataset digits-dvs --root $(DATA)/digits-dvs --out $(DATA)/digits-dvs-frames --workers $(WORKERS)

bench:
	$(PY) benchmarks/bench_framing.py
	$(PY) benchmarks/bench_preprocess.py

clean:
	rm -rf $(DATA)/digits-dvs $(DATA)/digits-dvs-frames .pytest_cache
