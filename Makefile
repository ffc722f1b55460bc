# Two commands for a newcomer (see README):
#   make demo   virtual environment + install + the whole pipeline on the embedded images
#   make test   virtual environment + install + every test, notebooks included (nbval, quick mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= outputs

.PHONY: demo test install bench clean

install: $(STAMP)

# Re-install only when the package metadata or the lock changes.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m course_sr demo --out $(OUT)

# Notebooks run in quick mode (COURSE_SR_QUICK=1: embedded images, tiny networks, CPU).
# --nbval-lax runs every cell and fails on errors; committed outputs are not compared.
test: $(STAMP)
	COURSE_SR_QUICK=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
