#!/bin/sh
# Build the Rust parsers as a Python extension and put it in OUTDIR:
#   parsers-rs/build.sh OUTDIR   ->  OUTDIR/mailwarden_parsers_rs.abi3.so
# PYO3_PYTHON (the interpreter PyO3 builds for) defaults to the project's venv.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
crate=$(cd "$(dirname "$0")" && pwd)
: "${PYO3_PYTHON:=$crate/../.venv/bin/python}"
export PYO3_PYTHON
cargo build --release --lib --manifest-path "$crate/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$crate/Cargo.toml" \
    | "$PYO3_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$1"
# copy to a temporary name first: a running interpreter may have the old one mapped
cp "$target/release/libmailwarden_parsers_rs.so" "$1/.mailwarden_parsers_rs.abi3.so.new"
mv "$1/.mailwarden_parsers_rs.abi3.so.new" "$1/mailwarden_parsers_rs.abi3.so"
