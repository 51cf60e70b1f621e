# mailpoold container image.
#   docker build -t mailpool .
#   docker run -p 50551:50551 mailpool
# Build stage: Debian 12 with the same dependency script as CI.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build-only
COPY . .
RUN rm -rf build && scripts/build.sh -DMAILPOOL_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    && strip build/daemon/mailpoold build/client/cli/mailpool

# Runtime stage: only the shared libraries the binaries link against.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libgrpc++1.51 libprotobuf32 libssl3 libabsl20220623 libgmime-3.0-0 libsqlite3-0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin mailpool \
    && mkdir -p /var/lib/mailpool && chown mailpool /var/lib/mailpool
COPY --from=build /src/build/daemon/mailpoold /src/build/client/cli/mailpool /usr/local/bin/
USER mailpool
# The outbox of asynchronous sends: /var/lib/mailpool/outbox.db. Keep it on a volume.
ENV XDG_STATE_HOME=/var/lib
VOLUME /var/lib/mailpool
EXPOSE 50551
# In a container the daemon must listen beyond loopback; publish the port deliberately.
ENTRYPOINT ["/usr/local/bin/mailpoold", "--listen=0.0.0.0:50551", "--metrics_listen=0.0.0.0:9551"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/mailpool", "--addr", "127.0.0.1:50551", "health"]
