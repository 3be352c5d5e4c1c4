#!/usr/bin/env bash
# BuildKit build speed, one run with hyperfine, reported as ratios (no pass/fail
# on time; TARGET lines for make bench):
#   parallel: 4 independent, I/O-bound services (each RUN waits 2 s, as a network
#             fetch would) with the engine's BuildKit at --parallel 4 vs 1.
#             Target: <= 0.7x.
#   classic:  the same 4 services with --builder classic vs BuildKit, both at
#             --parallel 4 (informational).
#   cache:    a RUN --mount=type=cache step that "downloads" 64 MiB into the cache
#             (2 s wait + write) unless it is there: a cold cache (a new cache id
#             every run) vs a warm one (the same id). Target: warm <= 0.7x cold.
# Every timed run changes a build arg, so the RUN steps run again (no layer cache).
# Needs the test services (make services) and bin/slipway (make build).
# BENCH_RUNS (default 5) runs per command.
set -euo pipefail
# shellcheck source=test/bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_setup "buildkit bench"

work=$(mktemp -d /tmp/slipway-bench-bk.XXXXXX)
ns=slipway-bench/bk$(date +%s)
export BENCH_REGISTRY=$SLIPWAY_TEST_REGISTRY/$ns
cleanup() {
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -F "$BENCH_REGISTRY/" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
base=$SLIPWAY_FIXTURE_REGISTRY/debian:bookworm
docker pull -q "$base" >/dev/null

mkdir -p "$work/app/ctx" "$work/cache/ctx"
cat >"$work/app/ctx/Dockerfile" <<DF
FROM $base
ARG NONCE=0
ARG SVC
RUN echo "\$SVC \$NONCE" > /nonce && sleep 2 && head -c 8M /dev/zero > /zeros
DF
{
  echo "services:"
  for s in s1 s2 s3 s4; do
    printf '  %s:\n    image: ${BENCH_REGISTRY}/%s\n    build:\n      context: ./ctx\n      args:\n        NONCE: ${NONCE:-0}\n        SVC: %s\n' "$s" "$s" "$s"
  done
} >"$work/app/docker-compose.yml"

cat >"$work/cache/ctx/Dockerfile" <<DF
# syntax=docker/dockerfile:1
FROM $base
ARG NONCE=0
ARG CACHE_ID=warm
RUN --mount=type=cache,id=\$CACHE_ID,target=/cache <<SH
set -e
if [ ! -f /cache/blob ]; then sleep 2; head -c 64M /dev/zero > /cache/blob; fi
cp /cache/blob /blob
echo "\$NONCE" > /nonce
SH
DF
printf 'services:\n  c:\n    image: ${BENCH_REGISTRY}/cache\n    build:\n      context: ./ctx\n      args:\n        NONCE: ${NONCE:-0}\n        CACHE_ID: ${CACHE_ID:-warm}\n' >"$work/cache/docker-compose.yml"
for d in app cache; do
  git -C "$work/$d" init -q
  git -C "$work/$d" add -A
  git -C "$work/$d" -c user.email=bench@slipway -c user.name=bench commit -qm bench
done

# shellcheck disable=SC2016 # expanded by hyperfine's shell, fresh for every run
nonce='NONCE=$(date +%s%N)'
cd "$work/app"
hyperfine --runs "$runs" --warmup 1 --export-json "$work/parallel.json" \
  -n buildkit-parallel-1 "$nonce $bin build --parallel 1 --manifest $work/b.json >/dev/null 2>&1" \
  -n buildkit-parallel-4 "$nonce $bin build --parallel 4 --manifest $work/b.json >/dev/null 2>&1" \
  -n classic-parallel-4 "$nonce $bin build --builder classic --parallel 4 --manifest $work/b.json >/dev/null 2>&1"
cd "$work/cache"
# shellcheck disable=SC2016
hyperfine --runs "$runs" --warmup 1 --export-json "$work/cache.json" \
  -n cache-cold "$nonce CACHE_ID=cold\$(date +%s%N) $bin build --manifest $work/c.json >/dev/null 2>&1" \
  -n cache-warm "$nonce CACHE_ID=warm-$ns $bin build --manifest $work/c.json >/dev/null 2>&1"

ratio() { # file baseline candidate
  jq -r --arg b "$2" --arg c "$3" '
    (.results[] | select(.command==$b) | .median) as $bm |
    (.results[] | select(.command==$c) | .median) as $cm |
    "\($cm/$bm*1000|round/1000) \($bm*100|round/100) \($cm*100|round/100)"' "$1"
}
report() { # label file baseline candidate target
  read -r r bm cm < <(ratio "$2" "$3" "$4")
  met=$(awk -v r="$r" -v t="$5" 'BEGIN{print (r<=t)?"met":"NOT met"}')
  echo "TARGET $1: $4 ${cm}s vs $3 ${bm}s (medians) = ${r}x (target <= ${5}x): $met"
}
report buildkit-parallel "$work/parallel.json" buildkit-parallel-1 buildkit-parallel-4 0.7
read -r r bm cm < <(ratio "$work/parallel.json" buildkit-parallel-4 classic-parallel-4)
echo "INFO classic vs buildkit at --parallel 4: ${cm}s vs ${bm}s (medians) = ${r}x"
report buildkit-cache-mount "$work/cache.json" cache-cold cache-warm 0.7
