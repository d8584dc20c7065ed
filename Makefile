# ckdsnn-events. `make install` sets up .venv; every other target uses it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CKD := $(VENV)/bin/ckd-events
DATA ?= data
WORKERS ?= 2
RUNS ?= runs

.PHONY: install test demo results bench energy-report fuzz kill9 clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# the comparison tools of the conformance tests (setup.cfg's bench extra), without their own
# dependencies: spikingjelly's list pulls torchaudio and more that the tests never import
BENCH_PINS := $(shell sed -n '/^bench =/,/^$$/p' setup.cfg | tail -n +2)

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(BENCH_PINS)

test:
	$(PY) -m pytest -q

# The offline demo on the embedded digits-dvs dataset (no download).
# simulate -> preprocess -> teacher -> distill (SAMD + NLD) -> evaluate -> energy report.
demo:
	$(CKD) demo --data $(DATA) --runs-root $(RUNS) --workers $(WORKERS)

# Every figure of the README's results section (digits-dvs): the demo (teacher, student, energy),
# then the five ablation studies, 5 paired seeds each, from the demo's cached teacher: `terms` at the
# recipe's 3 student epochs, the other four --quick (1 epoch; they share their CKDSNN row's runs).
# On 2 cores: demo ~4 min, terms ~50 min, the four quick studies ~30 min together.
ABLATE = $(CKD) ablate --dataset digits-dvs --root $(DATA)/digits-dvs-frames --seeds 5 --workers $(WORKERS) \
	--set runs_root=$(RUNS)
QUICK_STUDIES ?= scaling noise stage maps
results: demo
	$(ABLATE) --study terms
	for study in $(QUICK_STUDIES); do $(ABLATE) --study $$study --quick || exit 1; done

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
	$(PY) benchmarks/bench_compression.py
	$(PY) benchmarks/bench_loaders.py
	$(PY) benchmarks/bench_student_step.py
	$(PY) benchmarks/bench_energy_counting.py

clean:
	rm -rf $(DATA)/digits-dvs $(DATA)/digits-dvs-frames $(RUNS)/digits-dvs .pytest_cache
