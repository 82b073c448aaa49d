# Ciao: `make demo` runs the example notebook on the local backend, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-test demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[run]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

# A user kernelspec (~/.local/share/jupyter/kernels/ciao, running this venv's Python), so a
# JupyterLab installed anywhere else lists Ciao too.
install: $(VENV)/.installed
	$(PY) -m ciao install --user

install-test: $(VENV)/.installed-test

demo: install
	$(PY) -m ciao run examples/hello-distributed.ipynb
	@echo "Ciao is installed: in JupyterLab (any installation) choose the kernel" \
	  "'Ciao (distributed training)'; the README's Quick start shows a first cell."

# Three pytest workers, each a module at a time (module-scoped kernels and clusters stay whole):
# most tests wait on kernels, jobs and the test cluster, so three overlap well even on two
# cores. PYTEST_ARGS="-n 0" runs them in one process.
test: install-test
	$(PY) -m pytest -n 3 --dist loadscope $(PYTEST_ARGS)

lint: install-test
	$(PY) -m ruff check ciao tests bench examples tools
	$(PY) -m ruff format --check ciao tests bench examples tools
	$(PY) -m mypy

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install -e '.[bench]'
	touch $@

# bench/fanin.py, session.py, carry.py and tune.py write bench/results/; docs/performance.md reads them.
bench: install $(VENV)/.installed-bench
	$(PY) bench/startup.py
	$(PY) bench/session.py
	$(PY) bench/gateway.py
	$(PY) bench/fanin.py
	$(PY) bench/carry.py
	$(PY) bench/tune.py

clean:
	rm -rf $(VENV) build *.egg-info
