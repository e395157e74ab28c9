# Two commands matter: `make run` (install + start the gateway on embedded defaults)
# and `make test` (install what the tests need + run the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: what the gateway needs at run time, and what the tests start for real.
RUN_DEBS := python3-venv ca-certificates unar
TEST_DEBS := $(RUN_DEBS) swaks dovecot-imapd dovecot-lmtpd clamav-daemon chromium fonts-noto-cjk unar p7zip-full postgresql
BENCH_DEBS := postfix libzbar0 rspamd

.PHONY: run test check lint typecheck bench-deps debs-run debs-test clean

run: $(VENV)/.installed-run
	$(BIN)/mailmoat users ensure-admin
	$(BIN)/mailmoat serve

test: $(VENV)/.installed-test
	@scripts/ensure-postgres
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m mypy

debs-run:
	@scripts/apt-ensure $(RUN_DEBS)

debs-test:
	@scripts/apt-ensure $(TEST_DEBS)

bench-deps: $(VENV)/.installed-test
	@scripts/apt-ensure $(BENCH_DEBS)

$(VENV)/bin/python:
	@$(MAKE) --no-print-directory debs-run
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	@$(MAKE) --no-print-directory debs-test
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed-run $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
