# syntax=docker/dockerfile:1
# Container image of peba (docs/deployment.md, "Container").
#   docker build -t peba:$(git describe --tags --always) \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) .
#   docker run -d -p 9922:9922 -v peba-data:/var/lib/peba peba:TAG

# Build stage: DuckDB is linked through cgo, so the Debian-based Go image
# (gcc, g++) builds it; the runtime below is the same Debian release, so the
# glibc and libstdc++ the binary links against match.
FROM golang:1.26-bookworm AS build
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}" \
      -o /out/peba ./cmd/peba

FROM debian:bookworm-slim
# ca-certificates: GeoIP downloads and TLS to memcached/hpfeeds brokers by name.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/peba --shell /usr/sbin/nologin peba \
 && install -d -o peba -g peba -m 0750 /var/lib/peba
COPY --from=build /out/peba /usr/local/bin/peba
USER peba
WORKDIR /var/lib/peba
ENV PEBA_DATADIR=/var/lib/peba \
    PEBA_BINDHOST=0.0.0.0:9922
VOLUME /var/lib/peba
EXPOSE 9922
# The binary probes its own liveness endpoint: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/peba", "health", "http://127.0.0.1:9922/healthz"]
ENTRYPOINT ["/usr/local/bin/peba"]
CMD ["serve"]
