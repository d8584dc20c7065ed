# ckdsnn-events. `make install` sets up .venv; every other target uses it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CKD := $(VENV)/bin/ckd-events
DATA ?= data
WORKERS ?= 2
RUNS ?= runs

.PHONY: install test demo bench energy-report fuzz kill9 clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

test:
	$(PY) -m pytest -q

# The offline demo on the embedded digits-dvs dataset (no download).
# simulate -> preprocess -> teacher -> distill (SAMD + NLD) -> evaluate -> energy report.
demo:
	$(CKD) demo --data $(DATA) --runs-root $(RUNS) --workers $(WORKERS)

# The energy report of the most recent student run (or RUN=runs/<dataset>/<run>).
energy-report:
	$(CKD) energy $(if $(RUN),--run-dir $(RUN),--latest --runs-root $(RUNS))

# The fuzzers at full size: 10,000 mutants per reader (fewer of the slower targets); see tests/fuzz/.
FUZZ_CASES ?= 10000
fuzz:
	$(PY) tests/fuzz/run.py --cases $(FUZZ_CASES) --json fuzz-results.json

# kill -9 of preprocess and training at random moments; final outputs compared with an uninterrupted run.
kill9:
	$(PY) tests/fuzz/kill9.py

bench:
	$(PY) benchmarks/bench_framing.py
	$(PY) benchmarks/bench_preprocess.py
	$(PY) benchmarks/bench_loaders.py
	$(PY) benchmarks/bench_student_step.py
	$(PY) benchmarks/bench_energy_counting.py

clean:
	rm -rf $(DATA)/digits-dvs $(DATA)/digits-dvs-frames $(RUNS)/digits-dvs .pytest_cache
