#!/bin/sh
# Build the Rust parsers as a Python extension and put it in OUTDIR:
#   parsers-rs/build.sh OUTDIR   ->  OUTDIR/mailwarden_parsers_rs.abi3.so
# PYO3_PYTHON (the interpreter PyO3 builds for) defaults to the project's venv.
# `mailwarden native build --out OUTDIR` does the same and also writes the build
# record that `mailwarden native status` checks; use that for a build to deploy.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
crate=$(cd "$(dirname "$0")" && pwd)
# one spelling of the path: cargo rebuilds pyo3 whenever PYO3_PYTHON changes
: "${PYO3_PYTHON:=$(dirname "$crate")/.venv/bin/python}"
export PYO3_PYTHON
# rustup installs cargo there; a non-login shell may not have it on PATH
command -v cargo >/dev/null || PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release --lib --locked --manifest-path "$crate/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$crate/Cargo.toml" \
    | "$PYO3_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$1"
# copy to a temporary name first: a running interpreter may have the old one mapped
cp "$target/release/libmailwarden_parsers_rs.so" "$1/.mailwarden_parsers_rs.abi3.so.new"
mv "$1/.mailwarden_parsers_rs.abi3.so.new" "$1/mailwarden_parsers_rs.abi3.so"
