# Two commands do all set-up on a fresh machine (only Python 3.11 needed):
#   make reproduce   -> whole compendium, default profile, embedded synthetic data
#   make test        -> ruff + unit tests + every notebook in the smoke profile (the full tier)
#   make test-fast   -> ruff + unit tests only (no notebook, nothing marked slow): the edit-test loop
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PROFILE ?= default
# make setup: the pins to install (requirements.lock: every package at the version the tests passed with)
REQUIREMENTS ?= requirements.txt
# make setup: where torch comes from. Without an NVIDIA driver (no nvidia-smi) torch's CPU index,
# so that no CUDA packages are pulled; with one, or TORCH_INDEX= (empty), pip's index (PyPI).
# If the CPU index cannot be reached, PyPI is used (on a CPU-only machine that may pull CUDA packages).
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)
ARGS   ?=
# notebooks side by side in the CPU profiles; paper notebooks take every core (and the GPU) alone
JOBS   ?= $(if $(filter paper,$(PROFILE)),1,2)

.PHONY: setup reproduce smoke test test-fast update-reference lint bench book clean-outputs browser-test chromium

setup: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, alone, so that nothing later can pull another torch build.
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --retries 1 --timeout 10 torch==2.13.0 --index-url $(TORCH_INDEX) || { echo \
	  "torch from $(TORCH_INDEX) failed: taking it from pip's index"; $(PY) -m pip install --quiet torch==2.13.0; },\
	  $(PY) -m pip install --quiet torch==2.13.0)
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

reproduce: setup
	$(PY) -m asd_utils.run.runner --profile $(PROFILE) --jobs $(JOBS) $(ARGS)

smoke: setup
	$(PY) -m asd_utils.run.runner --profile smoke --jobs $(JOBS) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check asd_utils tests benchmarks probes scripts

test: setup
	$(VENV)/bin/ruff check asd_utils tests benchmarks probes scripts
	$(PY) scripts/check_notebooks_clean.py notebooks
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: setup
	$(VENV)/bin/ruff check asd_utils tests benchmarks probes scripts
	$(PY) -m pytest -q -p no:cacheprovider -m "not notebook and not slow" tests

# Rewrites tests/reference/smoke_summary.csv (and the machine kind it was written on) from a fresh
# shared smoke run. A deliberate step: commit the result with a message that says why the numbers moved.
update-reference: setup
	ASD_UPDATE_REFERENCE=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests/notebooks

# JupyterLab in a headless Chromium clicks through 00's clip browser and 08's explorer (tests/browser).
# `chromium`: as root, installs Debian's Chromium when none is found; otherwise the test skips and says how
browser-test: setup chromium
	$(PY) -m pytest -q -p no:cacheprovider -s tests/browser

chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$ASD_CHROMIUM" ] \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "no Chromium (apt-get install -y chromium as root): the browser test will skip"

bench: setup
	$(PY) benchmarks/run_all.py

# the executed compendium as a static HTML book (book/_build/html/index.html); reuses
# outputs/$(PROFILE)/ and runs the notebooks that have no executed copy yet
book: setup
	$(PY) scripts/build_book.py --profile $(PROFILE) --jobs $(JOBS)

clean-outputs:
	rm -rf outputs results figures/smoke figures/default cache
