# shellcheck shell=bash
# A standalone buildkitd for the tests of `slipway build --builder tcp://|unix://`.
# Sourced by services.sh after lib-services.sh.
#
# buildkitd is built once per version from the Go module proxy (the version
# slipway's go.mod pins for github.com/moby/buildkit, so client and daemon
# match) and cached under $STATE/cache/buildkitd-<version>/. It runs as root
# (rootful) with the OCI worker and the host's runc, host networking, and
# trusts the test registry's CA. It listens on a unix socket in the state
# directory and on 127.0.0.1:$BUILDKITD_PORT.
BUILDKITD_VERSION=${SLIPWAY_BUILDKITD_VERSION:-$(awk '$1 == "github.com/moby/buildkit" { print $2; exit }' "$REPO_ROOT/go.mod")}
BUILDKITD_PORT=${SLIPWAY_BUILDKITD_PORT:-12340}
BUILDKITD_CACHE=$STATE/cache/buildkitd-$BUILDKITD_VERSION/buildkitd
BUILDKITD_DIR=$STATE/buildkitd
BUILDKITD_SOCK=$BUILDKITD_DIR/buildkitd.sock
BUILDKITD_TCP=tcp://127.0.0.1:$BUILDKITD_PORT
BUILDKITD_PID=$BUILDKITD_DIR/buildkitd.pid

# The binary reports its version (a failed or foreign build is rebuilt).
buildkitd_ok() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF -- " $BUILDKITD_VERSION "; }

build_buildkitd() {
  local t0 src log=$STATE/cache/buildkitd-$BUILDKITD_VERSION.log dir
  [ -n "$BUILDKITD_VERSION" ] || die "no github.com/moby/buildkit version in $REPO_ROOT/go.mod"
  if buildkitd_ok "$BUILDKITD_CACHE"; then
    NOTE="$BUILDKITD_VERSION cached"
    return 0
  fi
  command -v go >/dev/null || die "building buildkitd $BUILDKITD_VERSION needs Go (https://go.dev/dl)"
  t0=$(now_ms)
  mkdir -p "$(dirname "$BUILDKITD_CACHE")"
  src=$(mktemp -d "${TMPDIR:-/tmp}/slipway-buildkitd-src.XXXXXXXX")
  # Built inside a writable copy of the module, as `go install ...@version`
  # refuses modules whose go.mod has replace/exclude directives.
  if ! {
    dir=$(go mod download -json "github.com/moby/buildkit@$BUILDKITD_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
      [ -n "$dir" ] && cp -r "$dir/." "$src" && chmod -R u+w "$src" &&
      (cd "$src" && GOFLAGS= CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X github.com/moby/buildkit/version.Version=$BUILDKITD_VERSION -X github.com/moby/buildkit/version.Revision=slipway-test" \
        -o "$BUILDKITD_CACHE.tmp" ./cmd/buildkitd)
  } >"$log" 2>&1; then
    rm -rf "$src" "$BUILDKITD_CACHE.tmp"
    tail -n 20 "$log" >&2 || true
    die "building buildkitd $BUILDKITD_VERSION failed; see $log"
  fi
  rm -rf "$src"
  mv -f "$BUILDKITD_CACHE.tmp" "$BUILDKITD_CACHE"
  buildkitd_ok "$BUILDKITD_CACHE" || die "$BUILDKITD_CACHE does not report version $BUILDKITD_VERSION; see $log"
  NOTE="built $BUILDKITD_VERSION in $(fmt_ms $(($(now_ms) - t0))) (log $log)"
}

buildkitd_answers() {
  # A gRPC connection needs a client; a listening socket and port will do.
  [ -S "$BUILDKITD_SOCK" ] && (exec 3<>"/dev/tcp/127.0.0.1/$BUILDKITD_PORT") 2>/dev/null
}

ensure_buildkitd() {
  build_buildkitd
  local built=$NOTE
  if pid_alive "$BUILDKITD_PID" buildkitd && buildkitd_answers; then
    NOTE="$built; running ($BUILDKITD_TCP, unix://$BUILDKITD_SOCK)"
    return 0
  fi
  stop_pidfile "$BUILDKITD_PID" buildkitd
  mkdir -p "$BUILDKITD_DIR/root"
  rm -f "$BUILDKITD_SOCK"
  cat >"$BUILDKITD_DIR/buildkitd.toml" <<TOML
# Written by test/scripts/services.sh.
root = "$BUILDKITD_DIR/root"
[grpc]
  address = ["unix://$BUILDKITD_SOCK", "$BUILDKITD_TCP"]
[worker.oci]
  enabled = true
  networkMode = "host"
[worker.containerd]
  enabled = false
[registry."$REGISTRY"]
  ca = ["$REG_DIR/ca.crt"]
TOML
  start_bg "$BUILDKITD_DIR/buildkitd.log" "$BUILDKITD_CACHE" --config "$BUILDKITD_DIR/buildkitd.toml"
  echo "$BG_PID" >"$BUILDKITD_PID"
  wait_until 60 buildkitd buildkitd_answers || {
    tail -n 20 "$BUILDKITD_DIR/buildkitd.log" >&2 || true
    die "buildkitd did not listen on $BUILDKITD_TCP within 60s; see $BUILDKITD_DIR/buildkitd.log"
  }
  NOTE="$built; started ($BUILDKITD_TCP, unix://$BUILDKITD_SOCK)"
}

stop_buildkitd() {
  stop_pidfile "$BUILDKITD_PID" buildkitd
  rm -f "$BUILDKITD_SOCK"
  NOTE="stopped"
}
