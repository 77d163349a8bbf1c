# hotline: `make run` starts the demo site, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEERS_STAMP := .peers-installed

.PHONY: run test compile debug venv peers lint typecheck bench clean unit e2e

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install -q "setuptools>=68" "Cython~=3.1" "numpy>=2" wheel
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

compile: $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace

debug: $(STAMP)
	HOTLINE_LINETRACE=1 $(BIN)/python setup.py -q build_ext --inplace --cython-always --cython-annotate

run: compile
	$(BIN)/hotline serve

# Test peers come from Debian: sipp (sip-tester), baresip, sipvicious (svwar/svcrack scans),
# spandsp (benchmark anchor), espeak-ng, sox, chromium (the browser pages, driven by the
# Python playwright package from the test extra, which never downloads a browser) and a
# CJK font (the pages' Chinese text in the screenshots).
peers:
	@if ! command -v sipp >/dev/null || ! command -v baresip >/dev/null || ! command -v espeak-ng >/dev/null \
	   || ! command -v svwar >/dev/null || [ ! -f /usr/include/spandsp.h ] || [ ! -x /usr/bin/chromium ] \
	   || [ ! -d /usr/share/fonts/truetype/wqy ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		  sip-tester baresip sipvicious libspandsp-dev espeak-ng sox chromium fonts-wqy-microhei >/dev/null; \
	fi

# Unit tests one at a time (some measure timing); the end-to-end tests, which mostly wait
# on real peers, in two pytest-xdist workers (each with its own RTP port range).
test: peers compile
	$(BIN)/python -m pytest -q -p no:cacheprovider tests --ignore=tests/e2e
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/e2e

unit: compile
	$(BIN)/python -m pytest -q -m "not e2e" tests

e2e: peers compile
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m e2e tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy sip acd

bench: peers compile
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build cext/*.c cext/*.so cext/*.html .pytest_cache
