# Two commands do all set-up on a fresh machine (only Python 3.11 needed):
#   make reproduce   -> whole compendium, default profile, embedded synthetic data
#   make test        -> ruff + unit tests + every notebook in the smoke profile
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PROFILE ?= default
ARGS   ?=
# notebooks side by side in the CPU profiles; paper notebooks take every core (and the GPU) alone
JOBS   ?= $(if $(filter paper,$(PROFILE)),1,2)

.PHONY: setup reproduce smoke test lint bench book clean-outputs

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, alone, so that nothing later can pull another torch build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

reproduce: setup
	$(PY) -m asd_utils.runner --profile $(PROFILE) --jobs $(JOBS) $(ARGS)

smoke: setup
	$(PY) -m asd_utils.runner --profile smoke --jobs $(JOBS) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check asd_utils tests benchmarks

test: setup
	$(VENV)/bin/ruff check asd_utils tests benchmarks
	$(PY) scripts/check_notebooks_clean.py notebooks
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: setup
	$(PY) benchmarks/run_all.py

# the executed compendium as a static HTML book (book/_build/html/index.html); reuses
# outputs/$(PROFILE)/ and runs the notebooks that have no executed copy yet
book: setup
	$(PY) scripts/build_book.py --profile $(PROFILE) --jobs $(JOBS)

clean-outputs:
	rm -rf outputs results figures/smoke figures/default cache
