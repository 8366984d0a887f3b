# Two commands do everything on a fresh machine (see README):
#   make repro   set up .venv, then `dvc repro` the default (mini) profile
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup repro test bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first, so nothing below can pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name dreamgen --display-name "DreamGen (.venv)" >/dev/null
	touch $(STAMP)

# Parameters are checked before DVC runs anything: DVC removes a stage's outputs before it
# starts the stage, so a bad value caught only inside the stage would cost them.
repro: setup
	$(PY) -m dreamgen.params check
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

test: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_foundation.py
	$(PY) benchmarks/bench_world_model.py
	$(PY) benchmarks/bench_policy.py
	$(PY) benchmarks/pipeline_clock.py

clean-venv:
	rm -rf $(VENV)
