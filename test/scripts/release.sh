#!/usr/bin/env bash
# make release: cross-builds slipway (tools/cmd/slipway) for linux and darwin on amd64 and
# arm64 into dist/ as slipway_<version>_<os>_<arch>.tar.gz (reproducible: -trimpath, fixed
# mtimes and owners, gzip -n), writes dist/SHA256SUMS, and pins the version, the download
# URL template and both checksums (archive and binary) per platform in
# resources/slipway/release.json, which the Jenkins steps verify downloads against.
#
# Environment:
#   VERSION        default: the exact v* tag without "v", else 0.0.0-dev.<short commit>
#   PLATFORMS      default: "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
#   DIST_DIR       default: dist
#   RESOURCES_DIR  default: resources/slipway (the pinned file goes there)
#   URL_TEMPLATE   default: the GitHub release asset URL; {version} {os} {arch} {archive}
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

die() { echo "release: $*" >&2; exit 2; }

GO=${GO:-go}
if [ -z "${VERSION:-}" ]; then
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
    VERSION=${tag#v}
  else
    VERSION="0.0.0-dev.$(git rev-parse --short=12 HEAD)"
  fi
fi
case "$VERSION" in
  ""|*[!0-9A-Za-z.+-]*) die "VERSION '$VERSION': use letters, digits and . + - only" ;;
esac
COMMIT=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no -- tools go.mod go.sum)" ]; then
  COMMIT="$COMMIT-dirty" # the binary says it was not built from a clean commit
fi
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
DIST_DIR=${DIST_DIR:-$root/dist}
RESOURCES_DIR=${RESOURCES_DIR:-$root/resources/slipway}
default_url='https://github.com/slipway-dev/slipway/releases/download/v{version}/{archive}'
URL_TEMPLATE=${URL_TEMPLATE:-$default_url}
case "$URL_TEMPLATE" in
  *'"'*|*\\*|*[[:space:]]*) die "URL_TEMPLATE must not hold quotes, backslashes or spaces" ;;
esac
# Archive timestamps: the commit's time, so the same commit gives the same bytes.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}

mkdir -p "$DIST_DIR" "$RESOURCES_DIR"
rm -f "$DIST_DIR"/slipway_*.tar.gz "$DIST_DIR/SHA256SUMS"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

pkg=github.com/slipway-dev/slipway/tools/internal/version
pins=()
for p in $PLATFORMS; do
  os=${p%/*}
  arch=${p#*/}
  case "$os/$arch" in
    linux/amd64|linux/arm64|darwin/amd64|darwin/arm64) ;;
    *) die "platform '$p': the Jenkins steps know linux and darwin on amd64 and arm64" ;;
  esac
  echo "release: building slipway $VERSION for $os/$arch" >&2
  mkdir -p "$stage/$os-$arch"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -buildvcs=false \
    -ldflags "-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$COMMIT" \
    -o "$stage/$os-$arch/slipway" ./tools/cmd/slipway
  archive="slipway_${VERSION}_${os}_${arch}.tar.gz"
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --mode='u=rwx,go=rx' -C "$stage/$os-$arch" -cf - slipway | gzip -9 -n >"$DIST_DIR/$archive"
  asha=$(sha256sum "$DIST_DIR/$archive" | cut -d' ' -f1)
  bsha=$(sha256sum "$stage/$os-$arch/slipway" | cut -d' ' -f1)
  pins+=("$os-$arch $archive $asha $bsha")
done
(cd "$DIST_DIR" && sha256sum slipway_"$VERSION"_*.tar.gz >SHA256SUMS)

pinned="$RESOURCES_DIR/release.json"
{
  printf '{\n  "version": "%s",\n  "commit": "%s",\n  "url": "%s",\n  "platforms": {\n' "$VERSION" "$COMMIT" "$URL_TEMPLATE"
  n=${#pins[@]}
  i=0
  for entry in "${pins[@]}"; do
    read -r plat archive asha bsha <<<"$entry"
    i=$((i + 1))
    sep=","
    [ "$i" = "$n" ] && sep=""
    printf '    "%s": {"archive": "%s", "sha256": "%s", "binarySha256": "%s"}%s\n' "$plat" "$archive" "$asha" "$bsha" "$sep"
  done
  printf '  }\n}\n'
} >"$pinned.tmp"
mv -f "$pinned.tmp" "$pinned"

echo "release: slipway $VERSION ($COMMIT) in $DIST_DIR:" >&2
cat "$DIST_DIR/SHA256SUMS" >&2
echo "release: pinned in $pinned" >&2
if [ "${#pins[@]}" -lt 4 ]; then
  echo "release: note: only $PLATFORMS pinned; the library refuses other platforms" >&2
fi
