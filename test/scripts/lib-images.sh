# shellcheck shell=bash disable=SC2034
# Base fixture images (sourced by services.sh): a Debian base (docker pull, else
# debootstrap + docker import, cached), then python/postgres/nginx built on it,
# all pushed to the fixture registry.

BASE_VERSION=2   # bump to rebuild the Debian base everywhere (2: labelled, reusable across state dirs)
DERIVED="python:bookworm postgres:15 nginx:bookworm"
CACHE_DIR=$STATE/cache
IMG_DIR=$STATE/images
DEBIAN_TAR=$CACHE_DIR/debian-bookworm-minbase.tar

# Content hash of a fixture's Dockerfile directory plus the base's stamp: a
# changed Dockerfile rebuilds even when the registry already has the tag.
fixture_hash() {
  local name=$1
  {
    cat "$IMG_DIR/debian.stamp" 2>/dev/null || true
    (cd "$REPO_ROOT/test/fixtures/base/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

stamp_ok() { [ -s "$IMG_DIR/$1.stamp" ] && [ "$(cat "$IMG_DIR/$1.stamp")" = "$2" ]; }

debian_mirror() {
  local m=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $2 ~ /^http/ {print $2; exit}' /etc/apt/sources.list)
  fi
  printf '%s' "${m:-http://deb.debian.org/debian}"
}

# debootstrap a minimal bookworm into a tarball (about 30 s; cached).
make_debian_tarball() {
  local root=$CACHE_DIR/rootfs mirror
  mirror=$(debian_mirror)
  rm -rf "$root"
  mkdir -p "$root"
  # One retry: a mirror hiccup should not fail a whole CI run.
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$IMG_DIR/debootstrap.log" 2>&1; then
    warn "debootstrap failed once (see $IMG_DIR/debootstrap.log); retrying"
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$IMG_DIR/debootstrap.log" 2>&1 ||
      die "debootstrap from $mirror failed twice; see $IMG_DIR/debootstrap.log"
  fi
  # Same apt sources as this host (so security updates resolve too), else the mirror.
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list"
  fi
  # Container-friendly apt/dpkg: no docs, no recommends, no cached debs.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slipway-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
EOF
  cat >"$root/etc/apt/apt.conf.d/slipway-container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Acquire::Languages "none";
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "${root:?}"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "${root:?}"/dev/*
  : >"$root/etc/hostname"
  rm -f "$root/etc/resolv.conf"
  tar --numeric-owner -C "$root" -cf "$DEBIAN_TAR.tmp" .
  mv "$DEBIAN_TAR.tmp" "$DEBIAN_TAR"
  rm -rf "$root"
}

ensure_debian_base() {
  local ref=$FIXTURES/debian:bookworm stamp="debian-bookworm-minbase-v$BASE_VERSION"
  if stamp_ok debian "$stamp" && registry_has debian bookworm; then
    if ! docker image inspect "$ref" >/dev/null 2>&1; then
      dk pull -q "$ref" >/dev/null
      NOTE="in registry (pulled local copy)"
    else
      NOTE="in registry"
    fi
    return 0
  fi
  local old
  old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  # A copy this script imported before (same stamp, e.g. from another
  # checkout's state dir) only needs pushing.
  if [ "$(docker image inspect -f '{{index .Config.Labels "dev.slipway.fixture"}}' "$ref" 2>/dev/null)" = "$stamp" ]; then
    NOTE="local image"
  elif [ -s "$DEBIAN_TAR" ]; then
    NOTE="imported cached debootstrap tarball"
  elif timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    NOTE="pulled debian:bookworm-slim"
  else
    make_debian_tarball
    NOTE="no registry pull; debootstrap $(debian_mirror)"
  fi
  case "$NOTE" in
    local*) ;;
    pulled*) docker tag debian:bookworm-slim "$ref" ;;
    *)
      docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' -c "LABEL dev.slipway.fixture=$stamp" \
        "$DEBIAN_TAR" "$ref" >/dev/null
      ;;
  esac
  dk push -q "$ref" >"$IMG_DIR/debian.push.log" 2>&1 || die "pushing $ref failed; see $IMG_DIR/debian.push.log"
  printf '%s\n' "$stamp" >"$IMG_DIR/debian.stamp"
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$ref")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}

# build_one NAME:TAG: build (unless current in the registry) and push.
build_one() {
  local nt=$1 name=${1%%:*} tag=${1#*:} ref hash log
  ref=$FIXTURES/$nt
  hash=$(fixture_hash "$name")
  log=$IMG_DIR/$name.log
  if stamp_ok "$name" "$hash" && registry_has "$name" "$tag"; then
    if ! docker image inspect "$ref" >/dev/null 2>&1; then
      dk pull -q "$ref" >"$log" 2>&1 || return 1
      echo "$name: in registry, pulled"
    else
      echo "$name: in registry"
    fi
    return 0
  fi
  local old
  old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  local try
  for try in 1 2; do
    # The second try covers a mirror hiccup during apt-get.
    if {
      docker build --build-arg "BASE=$FIXTURES/debian:bookworm" \
        --label "dev.slipway.fixture-hash=$hash" -t "$ref" "$REPO_ROOT/test/fixtures/base/$name" &&
        dk push "$ref"
    } >"$log" 2>&1; then
      break
    fi
    [ "$try" = 1 ] || return 1
    cp "$log" "$log.try1"
  done
  printf '%s\n' "$hash" >"$IMG_DIR/$name.stamp"
  # The previous build of this fixture is now untagged: drop it (only it).
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$ref")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
  echo "$name: built"
}

ensure_derived_images() {
  local nt pids=() names=() i rc=0 out=""
  for nt in $DERIVED; do
    build_one "$nt" >"$IMG_DIR/${nt%%:*}.result" &
    pids+=($!)
    names+=("${nt%%:*}")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      warn "building ${names[$i]} failed; last lines of $IMG_DIR/${names[$i]}.log:"
      tail -n 15 "$IMG_DIR/${names[$i]}.log" >&2 || true
      rc=1
    fi
    out+="$(cat "$IMG_DIR/${names[$i]}.result" 2>/dev/null); "
  done
  [ "$rc" = 0 ] || die "base images failed (see above)"
  NOTE=${out%; }
}

ensure_images() {
  mkdir -p "$CACHE_DIR" "$IMG_DIR"
  # docker login into services.sh's own config (fast; verifies the password).
  reg_password | dk login -u "$REG_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1 ||
    die "docker login to $REGISTRY failed (is $CERTS_D/ca.crt in place?)"
  step "image debian" ensure_debian_base
  step "images derived" ensure_derived_images
}
