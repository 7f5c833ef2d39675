# Secure Store images: one multi-stage file, two runtime targets.
#
#   docker build --target server -t secure-store-server .
#   docker build --target client -t secure-store-client .
#   docker buildx build --platform linux/arm64,linux/arm/v7 --target client -t REG/secure-store-client --push .
#
# The builder runs on the target platform (QEMU under buildx, native on
# balena's ARM builders), so nothing here needs a cross toolchain; see
# docs/DEPLOY.md for cross-compiling on the host instead.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build: the release binary ---------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
# Set by buildx for each platform (linux/arm64, linux/arm/v7, ...); printed so
# a multi-platform build log says which binary it is making.
ARG TARGETPLATFORM
# Extra code generation flags, e.g. "-C target-cpu=cortex-a72" for a Raspberry Pi 4.
ARG RUSTFLAGS=""
ENV RUSTFLAGS=${RUSTFLAGS}
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
RUN echo "building secure-store for ${TARGETPLATFORM:-the build platform}" \
 && cargo build --release --locked -p secure-store \
 && install -m 0755 target/release/secure-store /usr/local/bin/secure-store

# ---- runtime: what both images share ----------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/secure-store /usr/local/bin/secure-store

# ---- server: the Store Server, unprivileged ---------------------------------
# Mount a copy of FLEET/server (never the whole fleet) at /etc/secure-store/server,
# readable by uid 10001, and keep /var/lib/secure-store (state.db) on a volume.
# Replicas on PostgreSQL instead: SECURE_STORE_DATABASE_URL=postgres://... and
# the Tang key-encryption key as a file readable by uid 10001, e.g. a secret:
# SECURE_STORE_TANG_KEK_FILE=/run/secrets/tang_kek (docker-compose.postgres.yml,
# docs/DEPLOY.md); then FLEET/server/tang is not read (keys sealed in the database).
FROM runtime AS server
RUN groupadd --system --gid 10001 secure-store \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/secure-store \
      --shell /usr/sbin/nologin secure-store \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/secure-store /etc/secure-store /etc/secure-store/server
ENV SECURE_STORE_FLEET=/etc/secure-store/server \
    SECURE_STORE_DATA_DIR=/var/lib/secure-store \
    SECURE_STORE_LISTEN=0.0.0.0:8443
VOLUME ["/var/lib/secure-store"]
EXPOSE 8443
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/secure-store", "server"]

# ---- client: the device side (last stage: the default target) -------------
# Needs /dev/fuse and CAP_SYS_ADMIN for --mount (docker run --device /dev/fuse
# --cap-add SYS_ADMIN). Everything is configured through the environment
# (SECURE_STORE_SERVER, SECURE_STORE_ENVELOPE, MTLS_CERT, MTLS_KEY, MTLS_CA,
# SECURE_STORE_STORE, SECURE_STORE_MOUNT, ...), so the command line is only
# your app: secure-store runs as PID 1, forwards signals and reaps zombies.
FROM runtime AS client
RUN install -d -m 0700 /app/store /app/decrypted
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/secure-store", "run", "--"]
# Replace with your app. This one shows which variables it got (names only)
# and the decrypted files, then idles.
CMD ["/bin/sh", "-c", "env | cut -d= -f1 | sort; ls -lR /app/decrypted 2>/dev/null; exec sleep infinity"]
