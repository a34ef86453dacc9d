# The mailwarden commands (tail, worker, adapters, replay) in one image;
# docker-compose.yml runs each as its own service. Kafka itself runs from the
# apache/kafka image there, not from this one.
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailwarden ./mailwarden
COPY parsers ./parsers
COPY models ./models
COPY streams ./streams
COPY etc ./etc
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/mailwarden mailwarden \
    && install -d -o mailwarden -g mailwarden /var/lib/mailwarden

USER mailwarden
WORKDIR /var/lib/mailwarden
ENTRYPOINT ["mailwarden"]
CMD ["--help"]
