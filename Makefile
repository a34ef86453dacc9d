# mailwarden: the two commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck native test-native unit integration lab bench broker-start broker-stop clean

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

# The parsers compiled with mypyc (docs/parsers.md, "Compiled parsers"); rebuilt
# whenever their source changes.
NATIVE := build/native
PARSER_TESTS := tests/unit/parsers tests/unit/test_adversarial.py \
	tests/unit/test_corpus_acceptance.py tests/unit/test_parser_properties.py \
	tests/unit/test_replay.py tests/unit/test_native_parsers.py::test_parsers_in_use_are_the_expected_ones

$(NATIVE)/mailwarden-native.json: $(STAMP) $(wildcard parsers/*.py) models/events.py
	$(BIN)/mailwarden native build --out $(NATIVE)

native: $(NATIVE)/mailwarden-native.json

# The parser suites again, importing the compiled parsers (append mode keeps the
# checkout's own parsers/ behind the build on sys.path).
test-native: native
	MAILWARDEN_EXPECT_NATIVE=1 PYTHONPATH=$(NATIVE) $(BIN)/pytest -q -p no:cacheprovider \
		--import-mode=append $(PARSER_TESTS)

# Starts the real Kafka broker (and, as root with the Debian packages, a real
# Postfix and Dovecot) from the test fixtures.
test: lint typecheck native
	MAILWARDEN_NATIVE_BUILD=$(NATIVE) $(BIN)/pytest -q
	$(MAKE) --no-print-directory test-native

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
