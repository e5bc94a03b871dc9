# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home gateway \
 && install -d -o gateway -g gateway -m 0700 /db /exports
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER gateway
WORKDIR /data
# Three places, three volumes (docs/operations.md): /data holds gateway.toml and keys/ (the master key:
# mount it from a secret store, or use KMS), /db the SQLite database (or set GATEWAY_DATABASE_URL to
# PostgreSQL), /exports the audit export (bind it to another machine's storage, or use S3 Object Lock).
# Whoever copies the database volume then has neither the key that opens its secrets nor the export
# that proves its log.
ENV GATEWAY_DATA_DIR=/data \
    GATEWAY_DATABASE_URL=sqlite:////db/gateway.db \
    GATEWAY_AUDIT_EXPORT_DIR=/exports \
    GATEWAY_SERVER_HOST=0.0.0.0 \
    GATEWAY_SERVER_PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME ["/data", "/db", "/exports"]
EXPOSE 8080
# The health check asks /readyz as the configuration says serve listens: HTTPS once [tls] is on (trusting
# exactly tls.cert_file), HTTP otherwise, on server.port (gatewayctl health; exit 0 ready, 1 not).
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["gatewayctl", "health", "--timeout", "2"]
# First run on empty volumes: docker run --rm -v gw-keys:/data -v gw-db:/db -v gw-exports:/exports IMAGE gatewayctl init
# SIGTERM (docker stop) drains requests in flight for server.shutdown_timeout (30 s): give docker stop -t 40.
CMD ["gatewayctl", "serve"]
