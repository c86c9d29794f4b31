# syntax=docker/dockerfile:1
#
# nikara container image: `docker build -t nikara .` (docker-compose.yml builds it too).
#
# Two stages: a full Rust toolchain builds the release binary, and a slim Debian image
# of the same release (bookworm, so the glibc matches) runs it as an unprivileged user.

ARG RUST_VERSION=1.95

############################################################################ build
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Dependency layer: compile every dependency against placeholder sources, so that
# changing only our own code reuses this (slow) layer. Cargo needs the manifest of each
# workspace member, and a target for each, even though only `nikara` is built.
COPY Cargo.toml Cargo.lock ./
COPY loadtest/Cargo.toml loadtest/Cargo.toml
RUN mkdir -p src loadtest/src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && echo 'fn main() {}' > loadtest/src/main.rs \
    && cargo build --release --locked -p nikara \
    && rm -rf src loadtest/src

# The real sources (.dockerignore keeps target/, data/ and .git out). Copying the whole
# context also brings openapi/, projections/, migrations/ and webhooks/ for anything the
# code embeds at compile time. The touch makes the placeholder build look stale:
# COPY keeps the files' original mtimes, which can be older than the placeholder build.
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p nikara \
    && install -m 0755 target/release/nikara /usr/local/bin/nikara

########################################################################## runtime
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to the platforms' APIs, SMTP and a TLS-enabled KurrentDB.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so that volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 nikara \
    && useradd --system --uid 10001 --gid nikara \
        --home-dir /var/lib/nikara --no-create-home --shell /usr/sbin/nologin nikara \
    && mkdir -p /var/lib/nikara \
    && chown nikara:nikara /var/lib/nikara

COPY --from=build /usr/local/bin/nikara /usr/local/bin/nikara

# Data dir: embedded event store and read models, generated dev secrets, mail outbox.
# Mount a volume here (docker-compose.yml does); a new named volume inherits this
# directory's ownership, so the nikara user can write to it.
WORKDIR /var/lib/nikara

# Listen on all interfaces inside the container (the binary's default is loopback only).
ENV NIKARA_LISTEN=0.0.0.0:3000 \
    NIKARA_DATA_DIR=/var/lib/nikara

EXPOSE 3000

# No HEALTHCHECK: the slim image has no HTTP client. Probe GET /healthz (liveness) and
# GET /readyz (readiness) from the orchestrator instead.

USER nikara
ENTRYPOINT ["/usr/local/bin/nikara"]
CMD ["serve"]
