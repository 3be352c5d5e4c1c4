#!/usr/bin/env bash
# Runs a Jenkinsfile outside Jenkins with the project's pipeline harness (real sh, real
# files, credentials from a JSON file): `test/groovy/pipeline.sh --help` for the options.
# Used by `make demo` and handy for trying Jenkinsfile.example against the test services.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/groovy/lib.sh
. "$here/lib.sh"
groovy_setup
out=$(mktemp -d "${TMPDIR:-/tmp}/slipway-pipeline.XXXXXX")
trap 'rm -rf "$out"' EXIT
# src/ is not compiled here: the harness loads it from --library, as Jenkins loads a library.
groovy_compile "$out/classes" "$here"/harness/*.groovy "$here"/harness/cps/*.groovy
export SLIPWAY_REPO="$root"
# shellcheck disable=SC2086
"$JAVA" $JAVA_OPTS_GROOVY -cp "$out/classes:$GROOVY_CP" harness.Main "$@"
