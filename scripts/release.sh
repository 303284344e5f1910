#!/usr/bin/env bash
# Release build: versioned binaries under dist/ with version, commit and
# build date stamped in (`peba version` prints them) and a SHA256SUMS file.
#   scripts/release.sh [VERSION]     (default: git describe)
# DuckDB is linked through cgo, so each target needs a C/C++ toolchain for
# that platform; by default only the host's linux/amd64 or linux/arm64 is
# built. Set TARGETS="linux/amd64 linux/arm64" with CC_linux_arm64=... to
# cross-compile.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
targets=${TARGETS:-"$(go env GOOS)/$(go env GOARCH)"}

mkdir -p dist
for t in $targets; do
  os=${t%/*}; arch=${t#*/}
  out="dist/peba-${version}-${os}-${arch}"
  cc_var="CC_${os}_${arch}"
  echo "building $out"
  CGO_ENABLED=1 GOOS=$os GOARCH=$arch CC=${!cc_var:-${CC:-gcc}} \
    go build -trimpath \
      -ldflags "-s -w -X main.version=${version} -X main.commit=${commit} -X main.buildDate=${date}" \
      -o "$out" ./cmd/peba
done
(cd dist && sha256sum peba-"${version}"-* > "SHA256SUMS-${version}")
echo "done: $(ls dist | tr '\n' ' ')"
