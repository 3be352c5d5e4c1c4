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
# Target: slipway <= 1.1x the baseline. Needs Docker and Compose, and bin/slipway
# (make build). BENCH_RUNS (default 10) runs per command. Prints a TARGET line.
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
  docker rmi "$image" >/dev/null 2>&1 || true
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

leftover=$(docker ps -aq --filter label=com.docker.compose.project=slwbench | wc -l)
python3 - "$work/hf.json" "$runs" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base, slip = r["docker-compose up + down -v"], r["slipway test"]
ratio = slip["mean"] / base["mean"]
print("TARGET test-overhead: slipway test %.2fs +- %.2f vs docker-compose up+down -v %.2fs +- %.2f = %.2fx over %s runs (target <= 1.1x): %s"
      % (slip["mean"], slip["stddev"], base["mean"], base["stddev"], ratio, sys.argv[2], "met" if ratio <= 1.1 else "MISSED"))
PY
echo "slipway containers left after the runs: $leftover"
