# syntax=docker/dockerfile:1

# Build stage. The binary is static (CGO_ENABLED=0), so the final image
# needs no C library. The stage runs on the build machine's platform and
# cross-compiles for the target platform, so multi-platform builds
# (docker buildx build --platform linux/amd64,linux/arm64) need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules are downloaded in their own layer, which stays cached until
# go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# Set by BuildKit from --platform. When they are empty, go build targets
# the build machine's platform.
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/smartgate ./cmd/smartgate

# Final stage: no shell and no package manager, only CA certificates, time
# zone data and a nonroot user (uid and gid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smartgate /smartgate
USER nonroot:nonroot

# 8080: the public listener (server.listen). 9090: the admin listener
# (server.admin_listen) with /metrics, /healthz and /readyz. Both default
# to 127.0.0.1, which only the container itself reaches, so the
# configuration sets 0.0.0.0:8080 and 0.0.0.0:9090.
EXPOSE 8080 9090

# /readyz answers 200 once the upstream discovery document is loaded and
# Redis answers a ping. The image has no curl, so the binary checks itself.
# Change the URL when server.admin_listen uses another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/smartgate", "healthcheck", "--url", "http://127.0.0.1:9090/readyz"]

ENTRYPOINT ["/smartgate"]
CMD ["serve", "--config", "/etc/smartgate/config.yaml"]
