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
# the five ablation studies (5 paired seeds each, the recipe's 3 student epochs, the demo's cached
# teacher; the CKDSNN row is trained once, by `terms`, and read by the other four), one student with
# SAMD in the paper's form, and the SVM reference of the split. On 2 cores about 2 h in all (demo
# ~4 min, terms ~50 min, the other four ~70 min); ABLATE_FLAGS=--quick: one epoch per student.
ABLATE_FLAGS ?=
STUDIES ?= terms scaling noise maps stage
ABLATE = $(CKD) ablate --dataset digits-dvs --root $(DATA)/digits-dvs-frames --seeds 5 --workers $(WORKERS) \
	--set runs_root=$(RUNS) $(ABLATE_FLAGS)
results: demo
	for study in $(STUDIES); do $(ABLATE) --study $$study || exit 1; done
	$(CKD) distill --dataset digits-dvs --root $(DATA)/digits-dvs-frames --workers $(WORKERS) \
		--resume --run-dir $(RUNS)/digits-dvs/student-paper-samd-seed0 --set runs_root=$(RUNS) \
		--set loss.samd_variant=paper --set loss.samd_norm=sample-minmax
	$(PY) benchmarks/digits_split_ceiling.py

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
