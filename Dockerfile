# Magnetar: multi-stage build. Stage 1 compiles the release binary; stage 2 is Debian slim with
# the system ffmpeg (no downloads at run time), a non-root user and a data volume.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# librqbit with the fix Magnetar carries ([patch.crates-io] in Cargo.toml).
COPY patches patches
COPY src src
COPY config config
COPY benches benches
RUN cargo build --release --locked --bin magnetar

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/magnetar --shell /usr/sbin/nologin magnetar \
 && mkdir -p /var/lib/magnetar \
 && chown magnetar:magnetar /var/lib/magnetar
COPY --from=build /src/target/release/magnetar /usr/local/bin/magnetar
COPY config/default.toml /etc/magnetar/default.toml
COPY fixtures /usr/share/magnetar/fixtures
ENV MAGNETAR__SERVER__LISTEN=0.0.0.0:8080 \
    MAGNETAR__STORAGE__DATA_DIR=/var/lib/magnetar \
    MAGNETAR__ENGINE__PEER_LISTEN=0.0.0.0:6881
VOLUME ["/var/lib/magnetar"]
EXPOSE 8080 6881
USER magnetar
WORKDIR /var/lib/magnetar
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/magnetar"]
CMD ["serve"]
