# Multi-stage build on Debian 12, installing packages with the same script
# the README and CI use (scripts/install-deps.sh).
FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build && scripts/build.sh -DPKI_TESTS=OFF && strip build/pki_exporter

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime \
    && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
    && useradd --system --no-create-home --shell /usr/sbin/nologin pki
COPY --from=build /src/build/pki_exporter /usr/local/bin/pki_exporter
COPY --from=build /src/events/default-rules.yml /usr/share/pki_exporter/default-rules.yml
COPY examples/container.yml /etc/pki_exporter/pki_exporter.yml
USER pki
EXPOSE 9879
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://127.0.0.1:9879/-/healthy || exit 1
ENTRYPOINT ["/usr/local/bin/pki_exporter"]
CMD ["--config.file=/etc/pki_exporter/pki_exporter.yml", "--web.listen-address=:9879"]
