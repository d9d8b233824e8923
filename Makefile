# Two commands: `make run` opens the app on the built-in demo, `make test` runs the whole suite.
# Both create .venv when it is missing and install into it once; re-running costs seconds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast setup demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	# torch first, pinned: it resolves to the local CPU build; a bare "torch" would pull CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/unlearn-studio projects/demo.toml

# A second environment with transformers 4.46 and peft 0.13 (the oldest an export promises to load
# in), where the export tests load an export (tests/compat/check_export.py); about 1.5 min to build.
COMPAT := .venv-compat
COMPAT_STAMP := $(COMPAT)/.installed-stamp

$(COMPAT_STAMP):
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet --only-binary tokenizers torch==2.13.0 "transformers==4.46.3" "peft==0.13.2"
	touch $(COMPAT_STAMP)

test: $(STAMP) $(COMPAT_STAMP)
	QT_QPA_PLATFORM=offscreen UNLEARN_STUDIO_COMPAT_PYTHON=$(CURDIR)/$(COMPAT)/bin/python $(PY) -m pytest

# Everything but the tests that train or build models (marked slow): a quick check while working.
test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow"

# Rebuild the shipped demo world and models (about 14 minutes on 2 cores; bit-for-bit the same files).
demo: $(STAMP)
	$(VENV)/bin/unlearn-studio demo build --seed 0 --out resources/demo --overwrite

clean:
	rm -rf $(VENV) $(COMPAT) build *.egg-info .pytest_cache tests/screenshots
