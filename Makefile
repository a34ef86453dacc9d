# mailwarden: the two commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit integration lab bench broker-start broker-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mailwarden demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Starts the real Kafka broker (and, as root with the Debian packages, a real
# Postfix and Dovecot) from the test fixtures.
test: lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q -m kafka

lab: $(STAMP)
	$(BIN)/pytest -q -m mail_lab

bench: $(STAMP)
	$(BIN)/mailwarden bench all

broker-start: $(STAMP)
	$(BIN)/mailwarden broker start

broker-stop: $(STAMP)
	$(BIN)/mailwarden broker stop

clean:
	rm -rf .cache/kafka-data var build *.egg-info .mypy_cache .ruff_cache .pytest_cache
