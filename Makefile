# The two set-up commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ecert-installed

.PHONY: run test bench bench-bulk soak fuzz sysdeps clean

sysdeps:
	@bash scripts/sysdeps.sh

$(STAMP): pyproject.toml scripts/sysdeps.sh
	@bash scripts/sysdeps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ecert serve

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# 100,000 records through Dask (2 workers) next to the single-process rate; needs ~4 GB of disk
bench-bulk: $(STAMP)
	$(BIN)/python -m bench.bulk_bench --records 100000

# 10 minutes of sign + verify at 80 % of measured capacity on loopback
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 10 --load 0.8

# coverage-guided fuzzing (atheris) of the OFD reader, SES/DER parser, QR payload decoder and
# record validator; the documented run is `make fuzz FUZZ_RUNS=1000000`
FUZZ_RUNS ?= 20000
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz all -runs=$(FUZZ_RUNS) -timeout=10

clean:
	rm -rf $(VENV) .ecert .pytest_cache .benchmarks
