# Sourced by the bench scripts (not a bench itself: run.sh runs
# test/bench/*.sh only).

# bench_setup NAME: cd to the repository root; sets root, bin, state and
# runs (BENCH_RUNS, default 5); needs bin/slipway and the test services'
# env.sh (both named in the error, with NAME); exports the registry
# credentials and DOCKER_CONFIG the test services use.
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../../.." || exit 1
  root=$PWD
  bin=$root/bin/slipway
  state=${SLIPWAY_TEST_STATE:-$root/.state}
  runs=${BENCH_RUNS:-5}
  [ -x "$bin" ] || { echo "$1: $bin missing: run make build" >&2; exit 1; }
  [ -f "$state/env.sh" ] || { echo "$1: $state/env.sh missing: run make services" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$state/env.sh"
  export SLIPWAY_REGISTRY_USER=$SLIPWAY_TEST_REGISTRY_USER SLIPWAY_REGISTRY_PASSWORD=$SLIPWAY_TEST_REGISTRY_PASSWORD
  export DOCKER_CONFIG=$SLIPWAY_TEST_DOCKER_CONFIG
}

# bench_sampleapp NAME WORK REGISTRY PROJECT: the sample app 1.0.0 in
# WORK/v1 and 2.0.0 in WORK/v2, each built and pushed to REGISTRY as
# compose project PROJECT.
bench_sampleapp() {
  echo "$1: building and pushing sampleapp 1.0.0 and 2.0.0" >&2
  test/scripts/sampleapp-repo.sh "$2/v1" >/dev/null
  bench_release "$1" "$2/v1" "$3" "$4"
  cp -R "$2/v1" "$2/v2"
  test/scripts/sampleapp-repo.sh "$2/v2" 2.0.0 >/dev/null
  bench_release "$1" "$2/v2" "$3" "$4"
}

bench_release() { # NAME DIR REGISTRY PROJECT: build + push in that repository
  (cd "$2" && COMPOSE_PROJECT_NAME=$4 "$bin" build --registry "$3" >/dev/null 2>&1 && "$bin" push >/dev/null 2>&1) ||
    { echo "$1: build/push failed in $2" >&2; exit 1; }
}

# bench_ratio JSON NAME BASE CMD TARGET: a TARGET line, CMD's median over
# BASE's in hyperfine's JSON export, met when at most TARGET.
bench_ratio() {
  local r bm cm met
  read -r r bm cm < <(jq -r --arg b "$3" --arg c "$4" '
    (.results[] | select(.command==$b) | .median) as $bm |
    (.results[] | select(.command==$c) | .median) as $cm |
    "\($cm/$bm*1000|round/1000) \($bm*100|round/100) \($cm*100|round/100)"' "$1")
  met=$(awk -v r="$r" -v t="$5" 'BEGIN{print (r<=t)?"met":"NOT met"}')
  echo "TARGET $2: $4 ${cm}s vs $3 ${bm}s (medians) = ${r}x (target <= ${5}x): $met"
}

# bench_check NAME WORK URL: WORK/check.sh VERSION fails unless URL answers
# VERSION (the version the proxy serves must be the one just deployed).
bench_check() {
  cat > "$2/check.sh" <<EOS
#!/usr/bin/env bash
got=\$(curl -sf --max-time 5 "$3" || true)
[ "\$got" = "\$1" ] || { echo "$1: serving '\$got', want '\$1'" >&2; exit 1; }
EOS
  chmod +x "$2/check.sh"
}

# bench_recipe_files WORK SDIR PREFIX COMPOSE: for a hand-written recipe,
# WORK/PREFIX-v1 and -v2 get the compose file slipway rendered for the
# server (pinned images; named COMPOSE), the nginx.conf and WORK/prod.env as
# .env, taken from slipway's deploy directory SDIR on the agent's side.
bench_recipe_files() {
  local v commit
  for v in v1 v2; do
    commit=$(jq -r .commit "$1/$v/slipway-release.json")
    mkdir -p "$1/$3-$v/proxy"
    cp "$2/releases/$commit/compose.yaml" "$1/$3-$v/$4"
    cp "$1/$v/proxy/nginx.conf" "$1/$3-$v/proxy/"
    cp "$1/prod.env" "$1/$3-$v/.env"
  done
}

# bench_remove_project DOCKER_HOST PROJECT: the project's containers, its
# dbdata volume and default network on that engine, if any.
bench_remove_project() {
  local ids
  ids=$(docker -H "$1" ps -aq --filter "label=com.docker.compose.project=$2" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one word per container id
  [ -z "$ids" ] || docker -H "$1" rm -f $ids >/dev/null 2>&1 || true
  docker -H "$1" volume rm -f "${2}_dbdata" >/dev/null 2>&1 || true
  docker -H "$1" network rm "${2}_default" >/dev/null 2>&1 || true
}
