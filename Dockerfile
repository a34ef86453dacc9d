# The mailwarden commands (tail, worker, adapters, replay) in one image;
# docker-compose.yml runs each as its own service. Kafka itself runs from the
# apache/kafka image there, not from this one.
#
# The build stage compiles the Rust parsers (parsers-rs/, docs/parsers.md);
# the image carries only the module and its build record, first on PYTHONPATH.
# The build stage is bookworm: a module linked against its glibc also loads on
# any newer one.
FROM rust:1-slim-bookworm AS rust

FROM python:3.11-bookworm AS native
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailwarden ./mailwarden
COPY parsers ./parsers
COPY models ./models
COPY streams ./streams
COPY parsers-rs/Cargo.toml parsers-rs/Cargo.lock ./parsers-rs/
COPY parsers-rs/src ./parsers-rs/src
RUN pip install --no-cache-dir . \
    && mailwarden native build --source /src --out /opt/mailwarden-native

FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailwarden ./mailwarden
COPY parsers ./parsers
COPY models ./models
COPY streams ./streams
COPY etc ./etc
COPY --from=native /opt/mailwarden-native /opt/mailwarden-native
ENV PYTHONPATH=/opt/mailwarden-native
# status exits 1 when the module was built from other parsers than the installed ones
RUN pip install --no-cache-dir . \
    && python -c 'import mailwarden_parsers_rs' \
    && mailwarden native status \
    && useradd --system --uid 10001 --home-dir /var/lib/mailwarden mailwarden \
    && install -d -o mailwarden -g mailwarden /var/lib/mailwarden

USER mailwarden
WORKDIR /var/lib/mailwarden
ENTRYPOINT ["mailwarden"]
CMD ["--help"]
