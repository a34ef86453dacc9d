# mailwarden: the two commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck native rust-test unit integration lab bench broker-start broker-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mailwarden demo

# The parsers' Rust port (parsers-rs/, docs/parsers.md): PyO3 builds it for the
# venv's interpreter, named by one absolute path everywhere (a different
# PYO3_PYTHON makes cargo rebuild pyo3). rustup installs cargo in ~/.cargo/bin,
# which a non-login shell may not have on PATH.
RUST := parsers-rs
CARGO_ENV := PYO3_PYTHON=$(abspath $(BIN)/python)
ifeq ($(shell command -v cargo),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(RUST) && cargo fmt --check
	cd $(RUST) && $(CARGO_ENV) cargo clippy --release --all-targets --no-default-features -- -D warnings

typecheck: $(STAMP)
	$(BIN)/mypy

# The Rust parsers as a Python module in build/native, rebuilt whenever their
# sources or the Python parsers they are held to change.
NATIVE := build/native

$(NATIVE)/mailwarden-native.json: $(STAMP) $(wildcard parsers/*.py) \
		$(RUST)/Cargo.toml $(RUST)/Cargo.lock $(shell find $(RUST)/src -name '*.rs')
	$(BIN)/mailwarden native build --out $(NATIVE)

native: $(NATIVE)/mailwarden-native.json

# The crate's own tests (they link libpython instead of being an extension).
rust-test: $(STAMP)
	cd $(RUST) && $(CARGO_ENV) cargo test --release --lib --no-default-features

# Starts the real Kafka broker (and, as root with the Debian packages, a real
# Postfix and Dovecot) from the test fixtures. With the build on PYTHONPATH,
# tail, parse and replay run the Rust parsers; the Python ones stay the reference.
test: lint typecheck native rust-test
	PYTHONPATH=$(abspath $(NATIVE)) MAILWARDEN_NATIVE_BUILD=$(abspath $(NATIVE)) $(BIN)/pytest -q

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
