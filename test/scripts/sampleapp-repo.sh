#!/usr/bin/env bash
# sampleapp-repo.sh DEST [VERSION]
#   Copies test/fixtures/sampleapp into DEST as a git repository (branch main,
#   one commit), so tests and the demo work on a real repository.
#   With VERSION, writes it to web/VERSION (baked into the web image) and
#   commits again: a second release with a visibly different version. DEST
#   that is already such a repository only gets the version commit.
#   Prints the resulting commit (HEAD) on stdout.
set -euo pipefail

die() {
  echo "sampleapp-repo.sh: $*" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] || die "usage: sampleapp-repo.sh DEST [VERSION]"
dest=$1
version=${2:-}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures/sampleapp" && pwd)

g() { git -C "$dest" -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"; }

if [ ! -d "$dest/.git" ]; then
  if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    die "$dest exists, is not empty and is not a git repository; pass a new or empty directory"
  fi
  mkdir -p "$dest"
  cp -R "$src/." "$dest/"
  g init -q -b main
  g config user.name "slipway tests"
  g config user.email "tests@slipway.invalid"
  g add -A
  g commit -q -m "sampleapp $(cat "$dest/web/VERSION")"
fi

if [ -n "$version" ]; then
  case "$version" in
    *[!A-Za-z0-9._+-]*) die "VERSION '$version': use letters, digits and . _ + - only" ;;
  esac
  if [ "$(cat "$dest/web/VERSION")" = "$version" ]; then
    echo "sampleapp-repo.sh: $dest is already at version $version; no new commit" >&2
  else
    printf '%s\n' "$version" >"$dest/web/VERSION"
    g add web/VERSION
    g commit -q -m "sampleapp $version"
  fi
fi
g rev-parse HEAD
