#!/usr/bin/env bash
# make demo: the whole pipeline on this machine. Jenkinsfile.example runs through the
# project's pipeline runner (test/groovy/pipeline.sh, the same harness the end-to-end
# tests use) on a git repository of the sample app: build -> test -> push -> deploy to
# SSH target t1. Then a second version is deployed with the rolling strategy while a
# load loop hits the app, and the requests sent / failed are printed.
# `demo.sh clean` takes the demo's app down and removes its files. Re-running is fine.
# Expects `make services build` first (the Makefile does that).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
state=${SLIPWAY_TEST_STATE:-$root/.state}
# shellcheck disable=SC1091
. "$state/env.sh"
work="$state/demo"
app="$work/app"
# The "server": target t1 (SLIPWAY_DEMO_TARGET=t2 picks another).
t=$(echo "${SLIPWAY_DEMO_TARGET:-t1}" | tr '[:lower:]' '[:upper:]')
hv=SLIPWAY_TEST_${t}_HOST dv=SLIPWAY_TEST_${t}_DIR kv=SLIPWAY_TEST_${t}_KNOWN_HOSTS
target_host=${!hv:?no target ${SLIPWAY_DEMO_TARGET:-t1} in $state/env.sh} target_dir=${!dv} target_kh=${!kv}
key=$SLIPWAY_TEST_SSH_KEY
deploy_dir="$target_dir/demo"
url="http://$target_host:8080"
bin="$root/bin/slipway"

step() { printf '\n== %s\n' "$*"; }
since() { echo $(( $(date +%s) - $1 ))s; }

remote() { ssh -i "$key" -o UserKnownHostsFile="$target_kh" -o BatchMode=yes "deploy@$target_host" "$@"; }

clean() {
  # The demo's containers and volumes on the target, then its files here and there.
  remote "docker-compose -p sampleapp down -v --remove-orphans >/dev/null 2>&1 || docker compose -p sampleapp down -v --remove-orphans >/dev/null 2>&1; rm -rf '$deploy_dir'" || true
  rm -rf "$work"
}

if [ "${1:-}" = clean ]; then
  clean
  echo "demo: cleaned (app stopped on $target_host, $deploy_dir and $work removed)"
  exit 0
fi

t0=$(date +%s)
clean
mkdir -p "$work"
# The Jenkins credentials the example names, as the runner takes them (written by
# python so the registry password never passes through argv or a shell string).
umask 077
python3 - "$state/env.json" "$key" "$target_kh" "$root/test/fixtures/sampleapp/.env" > "$work/credentials.json" <<'PY'
import json, sys
env, key, kh, dotenv = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
print(json.dumps({
    "registry": {"type": "usernamePassword", "username": env["RegistryUser"], "password": env["RegistryPassword"]},
    "deploy-ssh": {"type": "sshUserPrivateKey", "username": "deploy", "privateKeyFile": key, "passphrase": ""},
    "deploy-known-hosts": {"type": "file", "path": kh},
    "shop-env": {"type": "file", "path": dotenv}}))
PY
umask 022
chmod 600 "$work/credentials.json"

run_pipeline() { # build number, strategy
  "$root/test/groovy/pipeline.sh" --workspace "$app" --credentials "$work/credentials.json" \
    --archive "$work/archive-$1" \
    --param "REGISTRY=$SLIPWAY_TEST_REGISTRY/demo" --param "DEPLOY_HOSTS=deploy@$target_host" \
    --param "DEPLOY_DIR=$deploy_dir" --param "STRATEGY=$2" \
    --env "BUILD_NUMBER=$1" --env "BUILD_TAG=demo-$1" --env "SLIPWAY_BIN=$bin" \
    --env "SLIPWAY_FIXTURE_REGISTRY=$SLIPWAY_FIXTURE_REGISTRY" \
    "$root/Jenkinsfile.example"
}

step "1/3 the sample app as a git repository ($app)"
"$root/test/scripts/sampleapp-repo.sh" "$app" >/dev/null
echo "commit $(git -C "$app" rev-parse --short=12 HEAD), version $(cat "$app/web/VERSION")"

step "2/3 Jenkinsfile.example: build -> test -> push -> deploy (recreate) to deploy@$target_host:$deploy_dir"
t=$(date +%s)
run_pipeline 1 recreate
echo "pipeline 1 finished in $(since "$t"); the app answers: $(curl -fsS "$url/version")"

step "3/3 version 2.0.0 with the rolling strategy, under load"
"$root/test/scripts/sampleapp-repo.sh" "$app" 2.0.0 >/dev/null
go build -o "$work/loadloop" "$root/tools/cmd/loadloop"
"$work/loadloop" -url "$url/version" -duration 10m >"$work/load.txt" 2>"$work/load.log" &
load_pid=$!
trap 'kill "$load_pid" 2>/dev/null || true' EXIT
sleep 1
t=$(date +%s)
run_pipeline 2 rolling
sleep 1
kill -INT "$load_pid"
wait "$load_pid" || true
trap - EXIT
echo "pipeline 2 finished in $(since "$t")"
sent=$(grep -oE 'sent=[0-9]+' "$work/load.txt" | cut -d= -f2)
failed=$(grep -oE 'failed=[0-9]+' "$work/load.txt" | cut -d= -f2)
serving=$(curl -fsS "$url/version")

cat <<EOF

== demo done in $(since "$t0")
requests during the rolling update: sent $sent, failed $failed
version now serving:  $serving
the app:              $url/ (also $url/items, $url/healthz)
release files:        $deploy_dir on the "server" (releases/<commit>, current ->, .slipway/lock)
                      see them: $bin status --host deploy@$target_host --dir $deploy_dir --identity $key --known-hosts $target_kh
what Jenkins archived: $work/archive-1, $work/archive-2
clean up:             make demo-clean
EOF
if [ "$failed" != 0 ]; then
  echo "demo: $failed requests failed during the rolling update" >&2
  exit 1
fi
