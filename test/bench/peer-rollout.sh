#!/usr/bin/env bash
# Rolling update speed against a peer tool, one host, one run, with
# hyperfine: the sample app's web service going from 1.0.0 to 2.0.0 on SSH
# target t3 (docker compose v2.40.3), with no request dropped by either:
#   docker-rollout: the peer's recipe: scp the compose file, nginx.conf and
#                   .env, then one ssh running `docker compose pull web` and
#                   `docker-rollout -p <project> web` (scale web to two,
#                   wait until the new one is healthy, stop the old one).
#                   The app's deploy.update_config.monitor (5s: healthy for
#                   5 s before the old container goes), which slipway honours
#                   and docker-rollout does not read, is given to it as
#                   --wait-after-healthy 5, so both wait alike.
#   slipway:        `slipway deploy --strategy rolling` (lock, atomic
#                   upload, change plan, gate, join the service's name, a 2 s
#                   drain, then stop the old container; switch current;
#                   prune), through the server's Compose;
#   library:        the same with --compose library.
# Before every timed run each tool puts 1.0.0 back its own way (untimed).
# Target (issue 20): slipway <= 1.5x docker-rollout.
# docker-rollout is not part of this repository: DOCKER_ROLLOUT=/path/to/
# docker-rollout (its one shell script, v0.13 measured) enables the bench;
# without it the bench says so and exits 0.
# Needs the test services (make services) and bin/slipway (make build).
# BENCH_RUNS (default 5) runs per command. Prints TARGET lines for make bench.
set -euo pipefail
if [ -z "${DOCKER_ROLLOUT:-}" ] || [ ! -f "$DOCKER_ROLLOUT" ]; then
  echo "peer-rollout bench: not run: set DOCKER_ROLLOUT to the docker-rollout script (github.com/wowu/docker-rollout)"
  exit 0
fi
DOCKER_ROLLOUT=$(realpath "$DOCKER_ROLLOUT")
# shellcheck source=test/bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_setup "peer-rollout bench"

host=$SLIPWAY_TEST_T3_HOST
user=$SLIPWAY_TEST_T3_USER
kh=$SLIPWAY_TEST_T3_KNOWN_HOSTS
project=slwbenchpeer
port=18091
sdir=$SLIPWAY_TEST_T3_DIR/bench-peer-slipway
cdir=$SLIPWAY_TEST_T3_DIR/bench-peer-rollout
work=$(mktemp -d /tmp/slipway-bench-peer.XXXXXX)
cleanup() {
  bench_remove_project "$SLIPWAY_TEST_T3_DOCKER_HOST" "$project"
  rm -rf "$sdir" "$cdir" "$work"
}
trap cleanup EXIT
rm -rf "$sdir" "$cdir"

bench_sampleapp "peer-rollout bench" "$work" "$SLIPWAY_TEST_REGISTRY/slipway-bench-peer" "$project"
printf 'WEB_PORT=%s\n' "$port" > "$work/prod.env"

ssho=(-i "$SLIPWAY_TEST_SSH_KEY" -o "UserKnownHostsFile=$kh" -o BatchMode=yes -o StrictHostKeyChecking=yes)
# shellcheck disable=SC2029 # the paths are the agent's to give
ssh "${ssho[@]}" "$user@$host" "mkdir -p '$cdir' '$sdir'"
scp -q "${ssho[@]}" "$DOCKER_ROLLOUT" "$user@$host:$cdir/docker-rollout"

cat > "$work/rollout.sh" <<EOF
#!/usr/bin/env bash
# The peer's recipe: scp, then ssh 'compose pull web && docker-rollout web'.
set -euo pipefail
v=\$1
scp -q -r ${ssho[*]} "$work/peer-\$v/compose.yaml" "$work/peer-\$v/.env" "$work/peer-\$v/proxy" "$user@$host:$cdir/"
printf '%s' "\$SLIPWAY_REGISTRY_PASSWORD" | ssh ${ssho[*]} "$user@$host" '
  set -e
  cd "$cdir"
  t=\$(mktemp -d); trap "rm -rf \$t" EXIT
  cp -R "\${DOCKER_CONFIG:-\$HOME/.docker}/cli-plugins" "\$t/" 2>/dev/null || true
  export DOCKER_CONFIG=\$t
  docker login -u "$SLIPWAY_REGISTRY_USER" --password-stdin "$SLIPWAY_TEST_REGISTRY" >/dev/null 2>&1
  docker compose -p $project pull -q web
  sh ./docker-rollout rollout -p $project --wait-after-healthy 5 web >/dev/null'
EOF
cat > "$work/slipway.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$work/\$1"
"$bin" deploy --strategy rolling --host "$user@$host" --dir "$sdir" --identity "$SLIPWAY_TEST_SSH_KEY" --known-hosts "$kh" --env-file "$work/prod.env" >>"$work/slipway.log" 2>&1
EOF
sed 's/deploy --strategy rolling/deploy --strategy rolling --compose library/' "$work/slipway.sh" > "$work/library.sh"
chmod +x "$work"/*.sh
bench_check "peer-rollout bench" "$work" "http://$host:$port/version"

# Warm up, and the peer's files: the compose file slipway rendered for this
# server's Compose (pinned images), nginx.conf, .env.
"$work/slipway.sh" v2 && "$work/check.sh" 2.0.0
"$work/slipway.sh" v1 && "$work/check.sh" 1.0.0
bench_recipe_files "$work" "$sdir" peer compose.yaml
"$work/rollout.sh" v2 && "$work/check.sh" 2.0.0
"$work/rollout.sh" v1 && "$work/check.sh" 1.0.0

hyperfine --runs "$runs" --export-json "$work/peer.json" \
  --prepare "$work/rollout.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/slipway.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/library.sh v1 && $work/check.sh 1.0.0" \
  -n docker-rollout "$work/rollout.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-rolling "$work/slipway.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-rolling-library "$work/library.sh v2 && $work/check.sh 2.0.0"

bench_ratio "$work/peer.json" rolling-vs-docker-rollout docker-rollout slipway-rolling 1.5
bench_ratio "$work/peer.json" rolling-library-vs-docker-rollout docker-rollout slipway-rolling-library 1.5
# BENCH_KEEP_LOG=FILE keeps slipway's deploy logs, to see where the time goes.
[ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/slipway.log" "$BENCH_KEEP_LOG"
