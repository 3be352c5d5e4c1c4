#!/usr/bin/env bash
# The Groovy tests of the shared library (make test-groovy): compiles the harness and the
# JUnit 4 tests with Debian's Groovy 2.4 and runs them. --e2e also runs the end-to-end test
# (Jenkinsfile.example against the real engine, registry and SSH target); extra arguments
# are test class names to run alone, e.g. `test/groovy/run.sh ParamsTest`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/groovy/lib.sh
. "$here/lib.sh"
groovy_setup

e2e=0
only=()
for a in "$@"; do
  case "$a" in
    --e2e) e2e=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) only+=("$a") ;;
  esac
done

out=$(mktemp -d "${TMPDIR:-/tmp}/slipway-groovy.XXXXXX")
trap 'rm -rf "$out"' EXIT

# src/ is compiled with the tests so they can call its pure helpers directly; the harness
# loads vars/ (and resolves src/) the way Jenkins does.
sources=("$here"/harness/*.groovy "$here"/harness/cps/*.groovy "$root"/src/slipway/*.groovy "$here"/unit/*.groovy)
[ "$e2e" = 1 ] && sources+=("$here"/e2e/*.groovy)
groovy_compile "$out/classes" "${sources[@]}"

classes=()
if [ ${#only[@]} -gt 0 ]; then
  classes=("${only[@]}")
else
  for f in "$here"/unit/*Test.groovy; do classes+=("$(basename "$f" .groovy)"); done
  if [ "$e2e" = 1 ]; then
    for f in "$here"/e2e/*Test.groovy; do classes+=("$(basename "$f" .groovy)"); done
  fi
fi

cd "$root"
export SLIPWAY_REPO="$root"
set +e
# shellcheck disable=SC2086
"$JAVA" $JAVA_OPTS_GROOVY -cp "$out/classes:$GROOVY_CP" org.junit.runner.JUnitCore "${classes[@]}" | tee "$out/junit.txt"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(OK \(|Tests run:)' "$out/junit.txt" | tail -n 1 || true)
echo "groovy tests: ${summary:-no summary}"
exit "$status"
