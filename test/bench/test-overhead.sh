#!/usr/bin/env bash
# Overhead of `slipway test` against plain Compose on a small test stack, in one
# run with hyperfine:
#   baseline: docker-compose -f docker-compose.test.yml up --abort-on-container-exit
#             --exit-code-from tests, then down -v (what a hand-written Jenkins
#             stage does, without collecting anything)
#   slipway:  slipway test (unique project, manifest image by ID, waits through
#             the Engine API, copies JUnit out, saves logs, summary.json, teardown
#             with an Engine API sweep)
# The stack: db (healthcheck, interval 1s), app (the manifest's image) and tests
# (depends on db healthy and app started, GETs app, writes JUnit). Every image is
# a FROM scratch image with a static Go binary (no base image, no registry).
# Second, when the test services are up (make services): the sample app's own
# test stack (test/fixtures/sampleapp: PostgreSQL, web, a Python test suite), the
# web image built once and recorded in a manifest for slipway; plain compose
# builds web and tests from cache on every run, slipway builds tests only.
# Target: slipway <= 1.1x the baseline. Needs Docker and Compose, and bin/slipway
# (make build). BENCH_RUNS (default 10; sample app: BENCH_SAMPLEAPP_RUNS, default
# 5) runs per command. Prints a TARGET line per stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=${SLIPWAY_BIN:-$root/bin/slipway}
runs=${BENCH_RUNS:-10}
[ -x "$bin" ] || { echo "test-overhead: $bin missing: run make build" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "test-overhead: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose="docker-compose"; fi

work=$(mktemp -d /tmp/slipway-bench-test.XXXXXX)
image=slipway-bench-fixture:latest
cleanup() {
  (cd "$work" && $compose -p slwbenchplain -f docker-compose.test.yml down -v >/dev/null 2>&1) || true
  (cd "$work/sampleapp" 2>/dev/null && $compose -p slwbenchsample -f docker-compose.test.yml down -v >/dev/null 2>&1) || true
  docker rmi "$image" slipway-bench-sampleapp-web:latest >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/img"
CGO_ENABLED=0 go build -trimpath -o "$work/img/fixture" ./tools/internal/testrun/testdata/fixture
printf 'FROM scratch\nCOPY fixture /fixture\nENTRYPOINT ["/fixture"]\n' > "$work/img/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$work/img" >/dev/null
id=$(docker image inspect -f '{{.Id}}' "$image")

cat > "$work/docker-compose.test.yml" <<YAML
services:
  db:
    image: $image
    command: ["serve"]
    healthcheck: {test: ["CMD", "/fixture", "check"], interval: 1s, retries: 30}
  app:
    image: $image
    command: ["serve"]
  tests:
    image: $image
    command: ["junit", "-url", "http://app:8080/health", "-dir", "/out"]
    depends_on:
      db: {condition: service_healthy}
      app: {condition: service_started}
    x-slipway: {results: [/out]}
YAML
commit=$(printf 'ab%.0s' $(seq 20))
cat > "$work/slipway-release.json" <<JSON
{"schemaVersion": 1, "project": "slwbench", "composeFiles": ["docker-compose.test.yml"],
 "commit": "$commit", "shortCommit": "abababababab", "branch": "main",
 "dirty": false, "buildUrl": "",
 "services": {"app": {"image": "slipway-bench-fixture", "tags": ["latest"], "imageId": "$id"}}}
JSON

cd "$work"
plain="$compose -p slwbenchplain -f docker-compose.test.yml up --abort-on-container-exit --exit-code-from tests >/dev/null 2>&1 && $compose -p slwbenchplain -f docker-compose.test.yml down -v >/dev/null 2>&1"
slip="$bin test --results $work/results 2>/dev/null"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/hf.json" \
  -n "docker-compose up + down -v" "$plain" \
  -n "slipway test" "$slip"

report() { # report NAME HYPERFINE_JSON RUNS
  python3 - "$@" <<'PY'
import json, sys
name, path, runs = sys.argv[1:4]
r = {x["command"]: x for x in json.load(open(path))["results"]}
base, slip = r["docker-compose up + down -v"], r["slipway test"]
ratio = slip["mean"] / base["mean"]
print("TARGET %s: slipway test %.2fs +- %.2f vs docker-compose up+down -v %.2fs +- %.2f = %.2fx over %s runs (target <= 1.1x): %s"
      % (name, slip["mean"], slip["stddev"], base["mean"], base["stddev"], ratio, runs, "met" if ratio <= 1.1 else "MISSED"))
PY
}
report test-overhead "$work/hf.json" "$runs"
echo "slipway containers left after the runs: $(docker ps -aq --filter label=com.docker.compose.project | xargs -r docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' | grep -c '^slwbench-test-' || true)"

# --- the sample app's test stack ----------------------------------------------
state=${SLIPWAY_TEST_STATE:-$root/.state}
if [ ! -f "$state/env.sh" ]; then
  echo "test-overhead: $state/env.sh missing (make services): sample app stack skipped"
  exit 0
fi
# shellcheck disable=SC1091
. "$state/env.sh"
export DOCKER_CONFIG=$SLIPWAY_TEST_DOCKER_CONFIG DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
cp -r "$root/test/fixtures/sampleapp" "$work/sampleapp"
cd "$work/sampleapp"
# Compose v1 rejects a top-level name: (slipway renders the stack without it).
sed -i '/^name:/d' docker-compose.test.yml docker-compose.yml
docker build -q -t slipway-bench-sampleapp-web:latest \
  --build-arg BASE_IMAGE="$SLIPWAY_FIXTURE_REGISTRY/python:bookworm" web >/dev/null
webid=$(docker image inspect -f '{{.Id}}' slipway-bench-sampleapp-web:latest)
cat > slipway-release.json <<JSON
{"schemaVersion": 1, "project": "sampleapp", "composeFiles": ["docker-compose.yml"],
 "commit": "$commit", "shortCommit": "abababababab", "branch": "main",
 "dirty": false, "buildUrl": "",
 "services": {"web": {"image": "slipway-bench-sampleapp-web", "tags": ["latest"], "imageId": "$webid"}}}
JSON
sruns=${BENCH_SAMPLEAPP_RUNS:-5}
plain="$compose -p slwbenchsample -f docker-compose.test.yml up --abort-on-container-exit --exit-code-from tests >/dev/null 2>&1 && $compose -p slwbenchsample -f docker-compose.test.yml down -v >/dev/null 2>&1"
slip="$bin test --results $work/sampleapp/results 2>/dev/null"
hyperfine --style basic --warmup 1 --runs "$sruns" --export-json "$work/hf-sampleapp.json" \
  -n "docker-compose up + down -v" "$plain" \
  -n "slipway test" "$slip"
report test-overhead-sampleapp "$work/hf-sampleapp.json" "$sruns"
