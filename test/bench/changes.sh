#!/usr/bin/env bash
# What deploying only what changed buys (issue 14), one host, one run, with
# hyperfine: an image-only app of five services in a chain (s5 waits for s4
# to be healthy, ..., s2 for s1; each healthy about a second after it
# starts), deployed with slipway to SSH target t3 (docker compose v2):
#   one-changed:  only s5's environment differs from what runs;
#   all-changed:  every service's environment differs.
# Before every timed run the base .env is deployed again (untimed).
# Target: one-changed <= 0.4x all-changed. Also prints the change plan's
# own time ("change plan done in") from the deploy log, target <= 0.3 s.
# Needs the test services (make services) and bin/slipway (make build).
# BENCH_RUNS (default 5) runs per command. Prints TARGET lines for make bench.
set -euo pipefail
# shellcheck source=test/bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_setup "changes bench"

host=$SLIPWAY_TEST_T3_HOST
user=$SLIPWAY_TEST_T3_USER
kh=$SLIPWAY_TEST_T3_KNOWN_HOSTS
project=slwbenchchanges
dir=$SLIPWAY_TEST_T3_DIR/bench-changes
work=$(mktemp -d /tmp/slipway-bench-changes.XXXXXX)
cleanup() {
  bench_remove_project "$SLIPWAY_TEST_T3_DOCKER_HOST" "$project"
  rm -rf "$dir" "$work"
}
trap cleanup EXIT
rm -rf "$dir"

# The app: five nginx services, each healthy once its start script ran.
mkdir -p "$work/app"
{
  echo "name: $project"
  echo "services:"
  for i in 1 2 3 4 5; do
    cat <<EOF
  s$i:
    image: $SLIPWAY_FIXTURE_REGISTRY/nginx:bookworm
    command: ["sh", "-c", "sleep 1 && touch /tmp/ready && exec nginx -g 'daemon off;'"]
    environment:
      V: \${V$i}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 30
    restart: unless-stopped
EOF
    if [ "$i" -gt 1 ]; then
      printf '    depends_on:\n      s%d:\n        condition: service_healthy\n' $((i - 1))
    fi
  done
} > "$work/app/compose.yaml"
(cd "$work/app" && git init -q && git add compose.yaml && git -c user.email=b@x -c user.name=bench commit -qm app \
  && "$bin" build --registry "$SLIPWAY_TEST_REGISTRY/slipway-bench-changes" >/dev/null 2>&1 && "$bin" push >/dev/null 2>&1) ||
  { echo "changes bench: build/push of the app failed" >&2; exit 1; }
printf 'V1=a\nV2=a\nV3=a\nV4=a\nV5=a\n' > "$work/base.env"
printf 'V1=a\nV2=a\nV3=a\nV4=a\nV5=b\n' > "$work/one.env"
printf 'V1=b\nV2=b\nV3=b\nV4=b\nV5=b\n' > "$work/all.env"
cat > "$work/deploy.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$work/app"
"$bin" deploy --host "$user@$host" --dir "$dir" --identity "$SLIPWAY_TEST_SSH_KEY" --known-hosts "$kh" --env-file "$work/\$1.env" >>"$work/deploy.log" 2>&1
EOF
chmod +x "$work/deploy.sh"
"$work/deploy.sh" base # warm up: images pulled, every container there

hyperfine --runs "$runs" --export-json "$work/changes.json" \
  --prepare "$work/deploy.sh base" \
  -n one-changed "$work/deploy.sh one" \
  -n all-changed "$work/deploy.sh all"

bench_ratio "$work/changes.json" deploy-one-changed all-changed one-changed 0.4
# The plan's time, median over every deploy above ("change plan done in 85ms" or "1.2s").
grep -o 'change plan done in [0-9.]*m\?s' "$work/deploy.log" | awk '{v=$5; if (v ~ /ms$/) {sub(/ms$/,"",v); v/=1000} else sub(/s$/,"",v); print v}' |
  sort -n | awk '{v[NR]=$1} END {if (!NR) {print "TARGET change-plan: no timings in the deploy log: NOT met"; exit}
    m=v[int((NR+1)/2)]; printf "TARGET change-plan: median %.3fs per host over %d deploys (target <= 0.3s): %s\n", m, NR, (m<=0.3?"met":"NOT met")}'
# BENCH_KEEP_LOG=FILE keeps every deploy's log, to see where the time goes.
[ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/deploy.log" "$BENCH_KEEP_LOG"
