# payhub's image: `docker build -t payhub .` (README: "Install"). Two stages: a Rust toolchain builds the
# release binary, and a small Debian image runs it as a user without privileges.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The same command as the README's "Install" (a test compares them).
RUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release --locked -p payhub

FROM debian:bookworm-slim
# curl for the health check only; payhub itself needs no system library beyond libc (TLS is rustls, with its
# own root certificates).
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/payhub --shell /usr/sbin/nologin payhub \
 && mkdir -p /var/lib/payhub \
 && chown payhub:payhub /var/lib/payhub \
 && chmod 0700 /var/lib/payhub
COPY --from=build /src/target/release/payhub /usr/local/bin/payhub
USER payhub
# The data directory holds the SQLite database and the master key file (unless PAYHUB_DATABASE_URL points at
# PostgreSQL and PAYHUB_MASTER_KEY is given): keep it on a volume and back it up.
ENV PAYHUB_DATA_DIR=/var/lib/payhub \
    PAYHUB_LISTEN=0.0.0.0:8080 \
    PAYHUB_LOG_FORMAT=json
VOLUME ["/var/lib/payhub"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["payhub"]
CMD ["serve"]
