# The mailwarden commands (tail, worker, adapters, replay) in one image;
# docker-compose.yml runs each as its own service. Kafka itself runs from the
# apache/kafka image there, not from this one.
#
# The build stage compiles the parsers with mypyc (docs/parsers.md, "Compiled
# parsers"); the image carries only the result, first on PYTHONPATH.
FROM python:3.11 AS native

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailwarden ./mailwarden
COPY parsers ./parsers
COPY models ./models
COPY streams ./streams
RUN pip install --no-cache-dir '.[native]' \
    && mailwarden native build --out /opt/mailwarden-native

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
RUN pip install --no-cache-dir . \
    && mailwarden native status \
    && useradd --system --uid 10001 --home-dir /var/lib/mailwarden mailwarden \
    && install -d -o mailwarden -g mailwarden /var/lib/mailwarden

USER mailwarden
WORKDIR /var/lib/mailwarden
ENTRYPOINT ["mailwarden"]
CMD ["--help"]
