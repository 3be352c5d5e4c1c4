#!/usr/bin/env bash
# Build and push speed, measured in one run with hyperfine, reported as ratios:
#   build: 4 independent, I/O-bound services (each RUN waits 2 s, as a network
#          fetch would, then writes 34 MiB): `slipway build` (default --parallel 2,
#          and --parallel 4) vs `docker-compose build` (1.29, one after another).
#          Target: slipway <= 0.7x.
#   push:  4 freshly built images with a 34 MiB layer of their own each (2 MiB
#          random, the rest compressible, so the push is I/O and round trips
#          rather than gzip on this small machine's CPU):
#          `slipway push` (default --parallel 4; it also checks every digest with
#          the registry and writes the pinned compose file) vs a sequential
#          `docker push` loop. Target: <= 0.6x. Measured twice: to the registry
#          on loopback (CPU-bound on this machine) and through test/bench/wanlink,
#          a simulated network link (50 ms per request, 1 MiB/s per upload or download stream).
# Needs the test services (make services) and bin/slipway (make build).
# BENCH_RUNS (default 5) runs per command; BENCH_PARTS=build or push runs one half. Prints TARGET lines for make bench.
set -euo pipefail
# shellcheck source=test/bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_setup "buildpush"
parts=${BENCH_PARTS:-all} # all, build or push
# docker-compose 1.29 builds through the engine API (classic builder), as slipway does.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0

work=$(mktemp -d /tmp/slipway-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
ns=slipway-bench/$(date +%s)
export BENCH_REGISTRY=$SLIPWAY_TEST_REGISTRY/$ns
base=$SLIPWAY_FIXTURE_REGISTRY/debian:bookworm

# --- the project: four services sharing one build context -----------------
mkdir -p "$work/app/ctx"
cat > "$work/app/ctx/Dockerfile" <<EOF
FROM $base
ARG NONCE=0
ARG SVC
RUN echo "\$SVC \$NONCE" > /nonce && sleep 2 \\
 && head -c 2M /dev/urandom > /random && head -c 32M /dev/zero > /zeros
EOF
{
  echo "services:"
  for s in s1 s2 s3 s4; do
    cat <<EOF
  $s:
    image: \${BENCH_REGISTRY}/$s
    build:
      context: ./ctx
      args:
        NONCE: \${NONCE:-0}
        SVC: $s
EOF
  done
} > "$work/app/docker-compose.yml"
git -C "$work/app" init -q
git -C "$work/app" add -A
git -C "$work/app" -c user.email=bench@slipway -c user.name=bench commit -qm bench

# The base image must be local and current for both tools.
docker pull -q "$base" >/dev/null

cd "$work/app"
# shellcheck disable=SC2016 # expanded by hyperfine's shell, fresh for every run
nonce='NONCE=$(date +%s%N)'
if [ "$parts" != push ]; then
  hyperfine --runs "$runs" --warmup 1 --export-json "$work/build.json" \
    -n compose-sequential "$nonce docker-compose -p bench build -q" \
    -n slipway-parallel-2 "$nonce $bin build --manifest $work/b.json >/dev/null 2>&1" \
    -n slipway-parallel-4 "$nonce $bin build --parallel 4 --manifest $work/b.json >/dev/null 2>&1"
fi

# --- push: fresh images before every timed run ----------------------------
if [ "$parts" != build ]; then
# push_bench NAME REGISTRY_PREFIX: hyperfine both ways of pushing 4 images.
push_bench() {
  local name=$1 prefix=$2
  cat > "$work/prepare-$name.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$work/app"
BENCH_REGISTRY=$prefix NONCE=\$(date +%s%N) "$bin" build --parallel 4 --manifest "$work/push-$name.json" 2>/dev/null \\
  | awk '{print \$2}' > "$work/refs-$name"
EOF
  cat > "$work/docker-push-loop-$name.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
while read -r ref; do docker push -q "\$ref" >/dev/null; done < "$work/refs-$name"
EOF
  chmod +x "$work/prepare-$name.sh" "$work/docker-push-loop-$name.sh"
  hyperfine --runs "$runs" --prepare "$work/prepare-$name.sh" --export-json "$work/$name.bench.json" \
    -n docker-push-loop "$work/docker-push-loop-$name.sh" \
    -n slipway-push "$bin push --manifest $work/push-$name.json --pinned $work/pinned-$name.yml >/dev/null 2>&1"
}

# Loopback: the registry is on this machine, so a push is bound by this
# machine's CPU (layer tar + gzip in the engine, hashing in the registry).
push_bench push-loopback "$BENCH_REGISTRY"

# Across a simulated network link (50 ms per request, 1 MiB/s per stream
# each way): what an agent pushing to a remote registry waits on.
(cd "$root" && go build -o "$work/wanlink" ./test/bench/wanlink)
"$work/wanlink" -upstream "$SLIPWAY_TEST_REGISTRY" -ca "$SLIPWAY_TEST_CA_CERT" >"$work/wanlink.addr" 2>"$work/wanlink.log" &
wan_pid=$!
trap 'kill "$wan_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/wanlink.addr" ] && break; sleep 0.1; done
wan=$(cat "$work/wanlink.addr")
mkdir -p "$work/dockercfg"
jq --arg h "$wan" '.auths[$h] = .auths[env.SLIPWAY_TEST_REGISTRY]' "$SLIPWAY_TEST_DOCKER_CONFIG/config.json" >"$work/dockercfg/config.json"
DOCKER_CONFIG=$work/dockercfg push_bench push-wan "$wan/$ns"
fi

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
if [ "$parts" != push ]; then
  report build "$work/build.json" compose-sequential slipway-parallel-2 0.7
  report build-parallel4 "$work/build.json" compose-sequential slipway-parallel-4 0.7
fi
if [ "$parts" != build ]; then
  report push-loopback "$work/push-loopback.bench.json" docker-push-loop slipway-push 0.6
  report push-wan "$work/push-wan.bench.json" docker-push-loop slipway-push 0.6
fi

# Leave no bench images behind on the agent.
# (by ID: each run re-tags, leaving the earlier images untagged)
docker images --format '{{.ID}} {{.Repository}}' | grep -F -e " $SLIPWAY_TEST_REGISTRY/$ns/" -e " ${wan:-none}/$ns/" \
  | awk '{print $1}' | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true

