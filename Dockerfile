# mailpoold container image, built from source (for hosts without a Debian 12 build).
#   podman build --format docker -t mailpoold .      (or: docker build -t mailpoold .)
# CI and deploy/compose.yaml use scripts/build-images.sh instead, which puts the binaries
# already built in build/ into deploy/mailpoold/Dockerfile's image: the runtime stage below
# is the same (keep the two in step).
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build-only
COPY . .
RUN rm -rf build && scripts/build.sh -DMAILPOOL_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    && strip build/daemon/mailpoold build/client/cli/mailpool

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libgrpc++1.51 libprotobuf32 libssl3 libabsl20220623 libgmime-3.0-0 libsqlite3-0 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin mailpool \
    && mkdir -p /var/lib/mailpool /run/mailpool && chown mailpool:mailpool /var/lib/mailpool /run/mailpool
COPY --from=build /src/build/daemon/mailpoold /src/build/client/cli/mailpool /usr/local/bin/
COPY deploy/mailpoold/entrypoint.sh /usr/local/bin/mailpoold-entrypoint
USER 10001:10001
ENV XDG_STATE_HOME=/var/lib
VOLUME /var/lib/mailpool
EXPOSE 50551 9551
ENTRYPOINT ["/usr/local/bin/mailpoold-entrypoint"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/mailpoold-entrypoint", "health"]
