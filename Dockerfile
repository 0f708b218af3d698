# Builds every executable in release mode, then ships them on a slim Debian with only the
# runtime libraries, as a non-root user. One image; each service picks its executable.
#   docker build -t gedge:latest .
ARG SWIFT_IMAGE=swift:6.3-bookworm
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka-dev librabbitmq-dev libpq-dev libcurl4-openssl-dev libyaml-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a change to the sources does not fetch them again.
COPY Package.swift ./
RUN swift package resolve
COPY Libraries Libraries
COPY Services Services
COPY Tests Tests
RUN swift build -c release --static-swift-stdlib \
    && mkdir /out \
    && for p in gateway scheduler agent accelerator-monitor faas-trigger notifier autoscaler gedgectl gedge-kafka-dev gedge-faas-demo; do \
         cp .build/release/$p /out/; \
       done \
    && cp -R .build/release/*.resources /out/

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 librabbitmq4 libpq5 libcurl4 libyaml-0-2 ca-certificates curl pci.ids \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home gedge
# The executables with their resource bundles (migrations, the OpenAPI document) beside them.
COPY --from=build /out/ /usr/local/bin/
COPY config /etc/gedge
USER 10001
ENV GEDGE_HTTP_HOST=0.0.0.0 GEDGE_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/gateway"]
