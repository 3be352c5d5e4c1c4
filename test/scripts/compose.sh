#!/usr/bin/env bash
# compose.sh [-f FILE]... [-p NAME] [--project-directory DIR] COMMAND [ARGS]...
#   Runs `docker compose` (v2) when installed, else `docker-compose` (v1).
#   v1 rejects a top-level `name:`, so for v1 the files are copied without it
#   and the name is passed with -p; relative paths still resolve against the
#   first file's directory (--project-directory). For scripts and by-hand checks
#   of the fixtures (test/fixtures/sampleapp), on either Compose.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
fi

files=()
project=""
projdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -f | --file) files+=("$2"); shift 2 ;;
    -p | --project-name) project=$2; shift 2 ;;
    --project-directory) projdir=$2; shift 2 ;;
    *) break ;;
  esac
done
if [ ${#files[@]} = 0 ]; then
  for f in compose.yaml compose.yml docker-compose.yml docker-compose.yaml; do
    if [ -f "$f" ]; then files=("$f"); break; fi
  done
  [ ${#files[@]} -gt 0 ] || { echo "compose.sh: no compose file here; pass -f FILE" >&2; exit 2; }
fi
[ -n "$projdir" ] || projdir=$(cd "$(dirname "${files[0]}")" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=()
i=0
for f in "${files[@]}"; do
  n=$(awk '/^name:[[:space:]]*/ {sub(/^name:[[:space:]]*/, ""); gsub(/["'\'']/, ""); print; exit}' "$f")
  [ -n "$project" ] || project=$n
  i=$((i + 1))
  sed '/^name:/d' "$f" >"$tmp/$i-$(basename "$f")"
  args+=(-f "$tmp/$i-$(basename "$f")")
done
[ -n "$project" ] && args+=(-p "$project")
docker-compose --project-directory "$projdir" "${args[@]}" "$@"
