# syntax=docker/dockerfile:1
# Multi-stage build: a cached dependency layer, then the app, then a slim non-root runtime.

FROM rust:1.95-slim-bookworm AS deps
WORKDIR /src
# Manifests only, with empty targets, so dependencies build in a layer that survives
# source changes.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY strategies/Cargo.toml strategies/Cargo.toml
COPY load/Cargo.toml load/Cargo.toml
# the patched rskafka, sqlx-core (TCP_NODELAY) and actix-http (raw UTF-8 targets, JSON codec
# errors): see vendor/README.md; dependencies, built in this layer
COPY vendor vendor
RUN mkdir -p src benches strategies/src load/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/strategies.rs \
    && echo 'fn main() {}' > benches/search.rs \
    && touch strategies/src/lib.rs load/src/lib.rs \
    && cargo build --release --locked --bin nanum \
    && rm -rf src strategies/src load/src benches

FROM deps AS build
COPY build.rs build.rs
COPY src src
COPY strategies/src strategies/src
COPY load/src load/src
COPY benches benches
COPY assets assets
# src/configuration.rs compiles the default settings in (include_str!).
COPY config config
# The context has no .git: build.rs takes the commit from here
# (docker build --build-arg NANUM_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .).
ARG NANUM_GIT_COMMIT=unknown
# Touch the sources so cargo rebuilds them over the dummy targets' artifacts.
# scripts/image-check builds exactly what these COPY lines take, without a daemon.
RUN touch src/main.rs src/lib.rs strategies/src/lib.rs load/src/lib.rs \
    && NANUM_GIT_COMMIT="$NANUM_GIT_COMMIT" cargo build --release --locked --bin nanum \
    && strip target/release/nanum

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin nanum
WORKDIR /app
COPY --from=build /src/target/release/nanum /usr/local/bin/nanum
COPY config config
RUN mkdir -p data && chown -R nanum:nanum /app
USER nanum
ENV APP_ENV=production \
    APP__SERVER__PORT=8080
# 8080: the API; 9091 when APP__SERVER__MANAGEMENT_PORT=9091 (metrics and probes).
EXPOSE 8080 9091
# production refuses to start without APP__AUTH__JWT_SECRET and APP__AUTH__ADMIN_PASSWORD.
ENTRYPOINT ["/usr/local/bin/nanum"]
CMD ["serve"]
