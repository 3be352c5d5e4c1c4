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
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/bin/slipway
state=${SLIPWAY_TEST_STATE:-$root/.state}
runs=${BENCH_RUNS:-5}
if [ -z "${DOCKER_ROLLOUT:-}" ] || [ ! -f "$DOCKER_ROLLOUT" ]; then
  echo "peer-rollout bench: not run: set DOCKER_ROLLOUT to the docker-rollout script (github.com/wowu/docker-rollout)"
  exit 0
fi
[ -x "$bin" ] || { echo "peer-rollout bench: $bin missing: run make build" >&2; exit 1; }
[ -f "$state/env.sh" ] || { echo "peer-rollout bench: $state/env.sh missing: run make services" >&2; exit 1; }
# shellcheck disable=SC1091
. "$state/env.sh"
export SLIPWAY_REGISTRY_USER=$SLIPWAY_TEST_REGISTRY_USER SLIPWAY_REGISTRY_PASSWORD=$SLIPWAY_TEST_REGISTRY_PASSWORD
export DOCKER_CONFIG=$SLIPWAY_TEST_DOCKER_CONFIG

host=$SLIPWAY_TEST_T3_HOST
user=$SLIPWAY_TEST_T3_USER
kh=$SLIPWAY_TEST_T3_KNOWN_HOSTS
tdocker="docker -H $SLIPWAY_TEST_T3_DOCKER_HOST"
project=slwbenchpeer
port=18091
sdir=$SLIPWAY_TEST_T3_DIR/bench-peer-slipway
cdir=$SLIPWAY_TEST_T3_DIR/bench-peer-rollout
work=$(mktemp -d /tmp/slipway-bench-peer.XXXXXX)
cleanup() {
  ids=$($tdocker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one word per container id
  [ -z "$ids" ] || $tdocker rm -f $ids >/dev/null 2>&1 || true
  $tdocker volume rm -f "${project}_dbdata" >/dev/null 2>&1 || true
  $tdocker network rm "${project}_default" >/dev/null 2>&1 || true
  rm -rf "$sdir" "$cdir" "$work"
}
trap cleanup EXIT
rm -rf "$sdir" "$cdir"

echo "peer-rollout bench: building and pushing sampleapp 1.0.0 and 2.0.0" >&2
reg=$SLIPWAY_TEST_REGISTRY/slipway-bench-peer
release() { # dir: build + push in that repository
  (cd "$1" && COMPOSE_PROJECT_NAME=$project "$bin" build --registry "$reg" >/dev/null 2>&1 \
     && "$bin" push >/dev/null 2>&1) || { echo "peer-rollout bench: build/push failed in $1" >&2; exit 1; }
}
test/scripts/sampleapp-repo.sh "$work/v1" >/dev/null
release "$work/v1"
cp -R "$work/v1" "$work/v2"
test/scripts/sampleapp-repo.sh "$work/v2" 2.0.0 >/dev/null
release "$work/v2"
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
cat > "$work/check.sh" <<EOF
#!/usr/bin/env bash
got=\$(curl -sf --max-time 5 "http://$host:$port/version" || true)
[ "\$got" = "\$1" ] || { echo "peer-rollout bench: serving '\$got', want '\$1'" >&2; exit 1; }
EOF
chmod +x "$work"/*.sh

# Warm up, and the peer's files: the compose file slipway rendered for this
# server's Compose (pinned images), nginx.conf, .env.
"$work/slipway.sh" v2 && "$work/check.sh" 2.0.0
"$work/slipway.sh" v1 && "$work/check.sh" 1.0.0
for v in v1 v2; do
  commit=$(jq -r .commit "$work/$v/slipway-release.json")
  mkdir -p "$work/peer-$v/proxy"
  cp "$sdir/releases/$commit/compose.yaml" "$work/peer-$v/compose.yaml"
  cp "$work/$v/proxy/nginx.conf" "$work/peer-$v/proxy/"
  cp "$work/prod.env" "$work/peer-$v/.env"
done
"$work/rollout.sh" v2 && "$work/check.sh" 2.0.0
"$work/rollout.sh" v1 && "$work/check.sh" 1.0.0

hyperfine --runs "$runs" --export-json "$work/peer.json" \
  --prepare "$work/rollout.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/slipway.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/library.sh v1 && $work/check.sh 1.0.0" \
  -n docker-rollout "$work/rollout.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-rolling "$work/slipway.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-rolling-library "$work/library.sh v2 && $work/check.sh 2.0.0"

for cmd in slipway-rolling slipway-rolling-library; do
  read -r r bm cm < <(jq -r --arg c "$cmd" '
    (.results[] | select(.command=="docker-rollout") | .median) as $b |
    (.results[] | select(.command==$c) | .median) as $m |
    "\($m/$b*1000|round/1000) \($b*100|round/100) \($m*100|round/100)"' "$work/peer.json")
  met=$(awk -v r="$r" 'BEGIN{print (r<=1.5)?"met":"NOT met"}')
  echo "TARGET $cmd: ${cm}s vs docker-rollout ${bm}s (medians) = ${r}x (target <= 1.5x): $met"
done
# BENCH_KEEP_LOG=FILE keeps slipway's deploy logs, to see where the time goes.
[ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/slipway.log" "$BENCH_KEEP_LOG"
