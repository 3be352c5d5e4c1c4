#!/usr/bin/env bash
# Deploy speed, one host, measured in one run with hyperfine and reported as a
# ratio: the sample app (web + postgres + nginx proxy) going from release 1.0.0
# to 2.0.0 on SSH target t1 (its own dockerd, docker-compose 1.29):
#   classic:  the recipe slipway replaces: scp the compose file, its config
#             file and .env, then one ssh running `docker login` (into a
#             throw-away DOCKER_CONFIG, credentials on stdin), `docker-compose
#             pull && docker-compose up -d`, and a loop that waits until every
#             container runs and is healthy (polling every 0.5 s, as slipway).
#   slipway:  `slipway deploy`, which also takes the lock, uploads the release
#             atomically, writes release.json, health-gates, switches
#             `current` and prunes; one SSH handshake.
#   library:  the same with --compose library: Compose's own code in slipway
#             converges through the SSH connection instead of the server's
#             docker-compose (issue 20's target: <= 0.5x the classic script).
# Before every timed run each tool puts release 1.0.0 back with its own
# method (untimed), so each run is a real 1.0.0 -> 2.0.0 upgrade.
# Targets: slipway <= 1.0x the classic script; library <= 0.5x.
# Needs the test services (make services) and bin/slipway (make build).
# BENCH_RUNS (default 5) runs per command. Prints a TARGET line for make bench.
set -euo pipefail
# shellcheck source=test/bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_setup "deploy bench"

host=$SLIPWAY_TEST_T1_HOST
user=$SLIPWAY_TEST_T1_USER
key=$SLIPWAY_TEST_SSH_KEY
kh=$SLIPWAY_TEST_T1_KNOWN_HOSTS
project=slwbench
port=18090
sdir=$SLIPWAY_TEST_T1_DIR/bench-slipway  # slipway's deploy directory
cdir=$SLIPWAY_TEST_T1_DIR/bench-classic  # the classic recipe's directory

work=$(mktemp -d /tmp/slipway-bench-deploy.XXXXXX)
cleanup() {
  bench_remove_project "$SLIPWAY_TEST_T1_DOCKER_HOST" "$project"
  rm -rf "$sdir" "$cdir" "$work"
}
trap cleanup EXIT
cleanup_start() { rm -rf "$sdir" "$cdir"; }
cleanup_start
mkdir -p "$work"

# --- two releases through the real pipeline: build + push ------------------
bench_sampleapp "deploy bench" "$work" "$SLIPWAY_TEST_REGISTRY/slipway-bench-deploy" "$project"
printf 'WEB_PORT=%s\n' "$port" > "$work/prod.env"

ssho=(-i "$key" -o "UserKnownHostsFile=$kh" -o BatchMode=yes -o StrictHostKeyChecking=yes)
# shellcheck disable=SC2029 # the paths are the agent's to give
ssh "${ssho[@]}" "$user@$host" "mkdir -p '$cdir' '$sdir'"

cat > "$work/classic.sh" <<EOF
#!/usr/bin/env bash
# The classic recipe: scp, then ssh 'pull && up -d' and a wait-until-healthy loop.
set -euo pipefail
v=\$1
scp -q -r ${ssho[*]} "$work/classic-\$v/docker-compose.yml" "$work/classic-\$v/.env" "$work/classic-\$v/proxy" "$user@$host:$cdir/"
printf '%s' "\$SLIPWAY_REGISTRY_PASSWORD" | ssh ${ssho[*]} "$user@$host" '
  set -e
  cd "$cdir"
  t=\$(mktemp -d); trap "rm -rf \$t" EXIT; export DOCKER_CONFIG=\$t
  docker login -u "$SLIPWAY_REGISTRY_USER" --password-stdin "$SLIPWAY_TEST_REGISTRY" >/dev/null 2>&1
  docker-compose -p $project pull -q && docker-compose -p $project up -d >/dev/null 2>&1
  for i in \$(seq 600); do
    ok=1
    for c in \$(docker ps -aq --filter label=com.docker.compose.project=$project); do
      s=\$(docker inspect -f "{{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}}" "\$c")
      case \$s in running|running/healthy) ;; *) ok=0 ;; esac
    done
    [ \$ok = 1 ] && exit 0
    sleep 0.5
  done
  exit 1'
EOF
cat > "$work/slipway.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$work/\$1"
"$bin" deploy --host "$user@$host" --dir "$sdir" --identity "$key" --known-hosts "$kh" --env-file "$work/prod.env" >/dev/null 2>&1
EOF
sed 's/deploy --host/deploy --compose library --host/' "$work/slipway.sh" > "$work/library.sh"
chmod +x "$work"/*.sh
bench_check "deploy bench" "$work" "http://$host:$port/version"

# Warm up: images pulled, volume initialised, both directories populated.
"$work/slipway.sh" v2 && "$work/check.sh" 2.0.0
"$work/slipway.sh" v1 && "$work/check.sh" 1.0.0
# The classic recipe's files: the same pinned images and settings, as the
# compose file slipway rendered for this server's docker-compose 1.29 (the
# pinned file itself has keys 1.29 rejects), its nginx.conf and the .env.
bench_recipe_files "$work" "$sdir" classic docker-compose.yml
"$work/classic.sh" v2 && "$work/check.sh" 2.0.0
"$work/classic.sh" v1 && "$work/check.sh" 1.0.0

hyperfine --runs "$runs" --export-json "$work/deploy.json" \
  --prepare "$work/classic.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/slipway.sh v1 && $work/check.sh 1.0.0" \
  --prepare "$work/library.sh v1 && $work/check.sh 1.0.0" \
  -n classic-scp-ssh "$work/classic.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-deploy "$work/slipway.sh v2 && $work/check.sh 2.0.0" \
  -n slipway-library "$work/library.sh v2 && $work/check.sh 2.0.0"

# One more deploy to count SSH handshakes, as slipway's own result reports
# them (sshd's log would also count other clients of t1).
hs=$(cd "$work/v1" && "$bin" deploy --host "$user@$host" --dir "$sdir" --identity "$key" --known-hosts "$kh" \
  --env-file "$work/prod.env" --json 2>/dev/null | jq -r '.hosts[0].handshakes')
echo "slipway deploy: $hs SSH handshake(s) for the host"

bench_ratio "$work/deploy.json" deploy classic-scp-ssh slipway-deploy 1.0
bench_ratio "$work/deploy.json" deploy-library classic-scp-ssh slipway-library 0.5
