# Builds every executable in release mode, then ships them on a slim Debian with only the
# runtime libraries, as a non-root user.
ARG SWIFT_IMAGE=swift:6.1-bookworm
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka-dev librabbitmq-dev libpq-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Libraries Libraries
COPY Services Services
COPY Tests Tests
RUN swift build -c release --static-swift-stdlib \
    && mkdir /out \
    && for p in scheduler accelerator-monitor gedge-kafka-dev; do cp .build/release/$p /out/; done \
    && cp -R .build/release/*.resources /out/

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 librabbitmq4 libpq5 libcurl4 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home gedge
COPY --from=build /out/ /usr/local/bin/
USER 10001
ENV GEDGE_HTTP_HOST=0.0.0.0 GEDGE_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/scheduler"]
