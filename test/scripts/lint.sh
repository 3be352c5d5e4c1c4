#!/usr/bin/env bash
# gofmt, go vet and staticcheck over the Go code; fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
unformatted=$(gofmt -l tools test 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# staticcheck comes through the Go module proxy, pinned, into the Go bin dir.
sc="$(go env GOPATH)/bin/staticcheck"
if [ ! -x "$sc" ]; then
  GOFLAGS=-buildvcs=false go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
"$sc" ./...
echo "lint: gofmt, go vet and staticcheck clean"
