#!/usr/bin/env bash
# The real services slipway's tests run against:
#   agent Docker Engine (started if none answers), bridge slw0 10.213.0.1/24,
#   a registry with TLS + htpasswd auth at 10.213.0.1:5443, the base fixture
#   images in it, and SSH targets t1..tN (network namespaces, each with its own
#   dockerd and sshd, user deploy). t3 has Compose v2 (built once from source,
#   cached), t1/t2 docker-compose v1; SLIPWAY_COMPOSE_V2_TARGETS changes that.
#   A standalone buildkitd (built once from source at go.mod's BuildKit version,
#   cached) on $STATE/buildkitd/buildkitd.sock and 127.0.0.1:12340.
#
#   test/scripts/services.sh up       start what is not running (idempotent, fast when up)
#   test/scripts/services.sh down     stop targets, buildkitd and registry, remove the bridge
#                                     (keeps the agent engine, images and caches);
#                                     down --purge also deletes target data and registry storage
#   test/scripts/services.sh status   one line per service; exit 1 if any is down
#
# State: $SLIPWAY_TEST_STATE (default <repo>/.state); env.json / env.sh there
# describe everything for tests (Go: tools/internal/testenv) and scripts.
# SLIPWAY_TARGETS=N changes the number of SSH targets (default 3, at most 10).
set -euo pipefail
set -o errtrace

# shellcheck source=lib-services.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-services.sh"
# shellcheck source=lib-images.sh
. "$SCRIPTS_DIR/lib-images.sh"
# shellcheck source=lib-targets.sh
. "$SCRIPTS_DIR/lib-targets.sh"
# shellcheck source=lib-buildkitd.sh
. "$SCRIPTS_DIR/lib-buildkitd.sh"

on_err() {
  local rc=$?
  [ -z "$CURRENT_STEP" ] || warn "step \"$CURRENT_STEP\" failed (exit $rc)"
  exit "$rc"
}
trap on_err ERR

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# ---------------------------------------------------------------- packages

# command-or-path -> Debian package
REQUIRED=(
  "dockerd docker.io"
  "docker docker.io"
  "docker-registry docker-registry"
  "/usr/sbin/sshd openssh-server"
  "/usr/lib/openssh/sftp-server openssh-sftp-server"
  "ssh openssh-client"
  "ssh-keygen openssh-client"
  "docker-compose docker-compose"
  "debootstrap debootstrap"
  "htpasswd apache2-utils"
  "ip iproute2"
  "iptables iptables"
  "openssl openssl"
  "git git"
  "curl curl"
  "groovy groovy"
  "/usr/share/java/junit4.jar junit4"
  "hyperfine hyperfine"
  "nsenter util-linux"
  "setsid util-linux"
  "flock util-linux"
)

missing_packages() {
  local entry what pkg
  for entry in "${REQUIRED[@]}"; do
    what=${entry% *}
    pkg=${entry#* }
    if [ "${what#/}" != "$what" ]; then
      [ -e "$what" ] && continue
    else
      command -v "$what" >/dev/null 2>&1 && continue
    fi
    printf '%s %s\n' "$what" "$pkg"
  done
}

ensure_packages() {
  local miss pkgs
  miss=$(missing_packages)
  if [ -z "$miss" ]; then
    NOTE="all present"
    return 0
  fi
  pkgs=$(awk '{print $2}' <<<"$miss" | sort -u | tr '\n' ' ')
  pkgs=${pkgs% }
  if [ "$(id -u)" = 0 ] && [ -r /etc/debian_version ] && command -v apt-get >/dev/null; then
    local log=$STATE/apt.log
    apt-get update -qq >"$log" 2>&1 || {
      cat "$log" >&2
      die "apt-get update failed (see above)"
    }
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq $pkgs >>"$log" 2>&1 || {
      tail -n 30 "$log" >&2
      die "apt-get install $pkgs failed (see above, full log $log)"
    }
    miss=$(missing_packages)
    [ -z "$miss" ] || die "still missing after apt-get install: $(tr '\n' ' ' <<<"$miss")"
    NOTE="installed $pkgs"
    return 0
  fi
  warn "missing commands (Debian package in brackets):"
  while read -r what pkg; do warn "  $what ($pkg)"; done <<<"$miss"
  die "install them (as root on Debian: apt-get install $pkgs) and run again"
}

# ---------------------------------------------------------------- agent engine

ensure_agent_docker() {
  if timeout 10 docker info >/dev/null 2>&1; then
    NOTE="answering ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    return 0
  fi
  mkdir -p "$STATE/agent"
  # A pidfile left by a dead dockerd makes the next one refuse to start.
  if [ -s /var/run/docker.pid ] && ! pid_alive /var/run/docker.pid dockerd; then
    rm -f /var/run/docker.pid
  fi
  if pid_alive /var/run/docker.pid dockerd; then
    NOTE="dockerd running, waiting"
  else
    start_bg "$STATE/agent/dockerd.log" dockerd
    NOTE="started dockerd (log $STATE/agent/dockerd.log)"
  fi
  wait_until 60 "dockerd" docker info && return 0
  # Seen once right after a killed engine: its containerd still held its state and
  # the new dockerd gave up waiting for containerd. One clean restart fixes it.
  warn "dockerd did not answer within 60 s; restarting it once (log $STATE/agent/dockerd.log)"
  pkill -x dockerd 2>/dev/null || true
  sleep 3
  pkill -9 -x dockerd 2>/dev/null || true
  pkill -9 -f '/var/run/docker/containerd/containerd.toml' 2>/dev/null || true
  rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
  start_bg "$STATE/agent/dockerd.log" dockerd
  NOTE="started dockerd on the second try (log $STATE/agent/dockerd.log)"
  wait_until 60 "dockerd" docker info ||
    die "the agent dockerd did not answer within 2 x 60 s; see $STATE/agent/dockerd.log"
}

# ---------------------------------------------------------------- bridge

ensure_bridge() {
  NOTE="present"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    NOTE="created"
  fi
  if ! ip -4 addr show dev "$BRIDGE" | grep -q "inet $BRIDGE_IP/24"; then
    ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # Docker's FORWARD policy is DROP and bridged frames pass iptables when
  # br_netfilter is loaded: let the targets talk to each other (swarm).
  if ! iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; then
    iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  fi
  NOTE+=" $BRIDGE $BRIDGE_IP/24"
}

remove_bridge() {
  while iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do
    iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
    NOTE="removed $BRIDGE"
  else
    NOTE="$BRIDGE absent"
  fi
}

# ---------------------------------------------------------------- registry

ensure_certs() {
  local d=$REG_DIR
  mkdir -p "$d/data"
  chmod 0700 "$d"
  NOTE="present"
  if [ ! -s "$d/ca.crt" ] || [ ! -s "$d/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj "/CN=slipway test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    rm -f "$d/server.crt"
    NOTE="new CA"
  fi
  if [ ! -s "$d/server.crt" ] || ! openssl x509 -checkend 86400 -noout -in "$d/server.crt" >/dev/null; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$BRIDGE_IP" 2>/dev/null
    cat >"$d/server.ext" <<EOF
subjectAltName=IP:$BRIDGE_IP,IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
EOF
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -out "$d/server.crt" -days 825 -extfile "$d/server.ext" 2>/dev/null
    rm -f "$d/server.csr"
    NOTE+=", new server certificate"
  fi
  chmod 0600 "$d/ca.key" "$d/server.key"
  chmod 0644 "$d/ca.crt" "$d/server.crt"
  # Every engine on this machine (agent and targets) trusts the CA through certs.d.
  if ! cmp -s "$d/ca.crt" "$CERTS_D/ca.crt"; then
    install -D -m 0644 "$d/ca.crt" "$CERTS_D/ca.crt"
    NOTE+=", CA installed in $CERTS_D"
  fi
}

ensure_htpasswd() {
  local d=$REG_DIR
  NOTE="present"
  if [ ! -s "$d/password" ]; then
    (umask 077 && openssl rand -hex 16 >"$d/password")
    NOTE="new password"
  fi
  chmod 0600 "$d/password"
  if [ ! -s "$d/htpasswd" ] || ! htpasswd -iv "$d/htpasswd" "$REG_USER" <"$d/password" >/dev/null 2>&1; then
    htpasswd -iBc "$d/htpasswd" "$REG_USER" <"$d/password" 2>/dev/null
    RESTART_REGISTRY=1
    NOTE+=", htpasswd written"
  fi
  chmod 0600 "$d/htpasswd"
}

write_registry_config() {
  local d=$REG_DIR
  [ -s "$d/http-secret" ] || (umask 077 && openssl rand -hex 16 >"$d/http-secret")
  local want
  want=$(
    cat <<EOF
version: 0.1
log:
  level: info
  fields:
    service: slipway-test-registry
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY
  secret: $(cat "$d/http-secret")
  tls:
    certificate: $d/server.crt
    key: $d/server.key
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: slipway-test-registry
    path: $d/htpasswd
EOF
  )
  if [ ! -f "$d/config.yml" ] || [ "$(cat "$d/config.yml")" != "$want" ]; then
    (umask 077 && printf '%s\n' "$want" >"$d/config.yml")
    RESTART_REGISTRY=1
  fi
}

RESTART_REGISTRY=0
ensure_registry() {
  local d=$REG_DIR
  write_registry_config
  if pid_alive "$d/registry.pid" docker-registry; then
    if [ "$RESTART_REGISTRY" = 0 ] && registry_answers; then
      NOTE="running on https://$REGISTRY"
      return 0
    fi
    stop_pidfile "$d/registry.pid" docker-registry 10
  fi
  start_bg "$d/registry.log" docker-registry serve "$d/config.yml"
  echo "$BG_PID" >"$d/registry.pid"
  wait_until 30 registry registry_answers || {
    tail -n 20 "$d/registry.log" >&2 || true
    die "the registry at https://$REGISTRY did not answer 401 without / 200 with credentials within 30 s; see $d/registry.log"
  }
  NOTE="started on https://$REGISTRY (401 anonymous, 200 as $REG_USER)"
}

stop_registry() {
  if pid_alive "$REG_DIR/registry.pid" docker-registry; then
    stop_pidfile "$REG_DIR/registry.pid" docker-registry 10
    NOTE="stopped"
  else
    rm -f "$REG_DIR/registry.pid"
    NOTE="not running"
  fi
}

# ---------------------------------------------------------------- env files

write_env() {
  local pw targets="" name ip first=1 sh compose_v2=""
  pw=$(reg_password)
  # A target's "Compose" is the flavour deploy finds there over SSH (v1 or
  # v2); ComposeV2 is the agent's v2 binary ("" when none is built).
  if [ -n "$COMPOSE_V2_TARGETS" ] && [ -x "$COMPOSE_V2" ]; then compose_v2=$COMPOSE_V2; fi
  for name in $(target_names); do
    ip=$(target_ip "$name")
    [ $first = 1 ] || targets+=","
    first=0
    targets+=$(
      printf '\n    {"Name": %s, "Host": %s, "Port": 22, "PortNoForwarding": %s, "PortBare": %s, "PortNoCompose": %s, "User": %s, "KeyFile": %s, "KnownHosts": %s, "DockerHost": %s, "Dir": %s, "Compose": %s}' \
        "$(json_str "$name")" "$(json_str "$ip")" "$PORT_NO_FORWARDING" "$PORT_BARE" "$PORT_NO_COMPOSE" "$(json_str "$DEPLOY_USER")" \
        "$(json_str "$STATE/ssh/id_ed25519")" "$(json_str "$(target_dir "$name")/known_hosts")" \
        "$(json_str "unix://$(target_sock "$name")")" "$(json_str "$(target_dir "$name")/srv")" \
        "$(json_str "$(target_compose "$name")")"
    )
  done
  (
    umask 077
    cat >"$STATE/env.json.tmp" <<EOF
{
  "StateDir": $(json_str "$STATE"),
  "Registry": $(json_str "$REGISTRY"),
  "RegistryUser": $(json_str "$REG_USER"),
  "RegistryPassword": $(json_str "$pw"),
  "CACert": $(json_str "$REG_DIR/ca.crt"),
  "FixtureRegistry": $(json_str "$FIXTURES"),
  "ComposeV2": $(json_str "$compose_v2"),
  "BuildKitd": $(json_str "$BUILDKITD_TCP"),
  "BuildKitdSocket": $(json_str "unix://$BUILDKITD_SOCK"),
  "Targets": [${targets}
  ]
}
EOF
    mv "$STATE/env.json.tmp" "$STATE/env.json"

    sh="# Written by test/scripts/services.sh up; source it in scripts.
export SLIPWAY_TEST_STATE='$STATE'
export SLIPWAY_TEST_REGISTRY='$REGISTRY'
export SLIPWAY_TEST_REGISTRY_USER='$REG_USER'
export SLIPWAY_TEST_REGISTRY_PASSWORD='$pw'
export SLIPWAY_TEST_CA_CERT='$REG_DIR/ca.crt'
export SLIPWAY_TEST_DOCKER_CONFIG='$DOCKER_CFG'
export SLIPWAY_FIXTURE_REGISTRY='$FIXTURES'
export SLIPWAY_TEST_SSH_KEY='$STATE/ssh/id_ed25519'
export SLIPWAY_TEST_KNOWN_HOSTS='$STATE/ssh/known_hosts'
export SLIPWAY_TEST_TARGETS='$(target_names | tr '\n' ' ' | sed 's/ $//')'
export SLIPWAY_TEST_COMPOSE_V2='$compose_v2'
export SLIPWAY_TEST_BUILDKITD='$BUILDKITD_TCP'
export SLIPWAY_TEST_BUILDKITD_SOCKET='unix://$BUILDKITD_SOCK'
"
    for name in $(target_names); do
      local up=${name^^}
      sh+="export SLIPWAY_TEST_${up}_HOST='$(target_ip "$name")'
export SLIPWAY_TEST_${up}_USER='$DEPLOY_USER'
export SLIPWAY_TEST_${up}_KNOWN_HOSTS='$(target_dir "$name")/known_hosts'
export SLIPWAY_TEST_${up}_DOCKER_HOST='unix://$(target_sock "$name")'
export SLIPWAY_TEST_${up}_DIR='$(target_dir "$name")/srv'
export SLIPWAY_TEST_${up}_COMPOSE='$(target_compose "$name")'
"
    done
    printf '%s' "$sh" >"$STATE/env.sh.tmp"
    mv "$STATE/env.sh.tmp" "$STATE/env.sh"
  )
  NOTE="$STATE/env.json, env.sh"
}

# ---------------------------------------------------------------- commands

lock_state() {
  mkdir -p "$STATE"
  chmod 0755 "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -w 600 9; then
    die "another services.sh holds $STATE/.lock for more than 10 minutes"
  fi
}

cmd_up() {
  local t0 sock
  t0=$(now_ms)
  # 10 at most: target i gets 10.213.0.(10+i), bridge 192.168.(200+i).1/24 and
  # the address pool 172.(20+i).0.0/16, which leaves 172.16.0.0/12 beyond 11.
  case "$NTARGETS" in '' | *[!0-9]*) die "SLIPWAY_TARGETS must be a number 0..10, got '$NTARGETS'" ;; esac
  [ "$NTARGETS" -le 10 ] || die "SLIPWAY_TARGETS must be a number 0..10, got '$NTARGETS'"
  case "$STATE" in /*) ;; *) die "SLIPWAY_TEST_STATE must be an absolute path, got '$STATE'" ;; esac
  sock=$(target_sock "t$NTARGETS") # the longest name
  [ ${#sock} -lt 100 ] ||
    die "SLIPWAY_TEST_STATE is too long for unix socket paths ($sock, ${#sock} bytes; the limit is 107): use a shorter path"
  if [ "$(id -u)" != 0 ]; then
    step packages ensure_packages
    die "services.sh up needs root (network namespaces, dockerd, /etc/docker/certs.d)"
  fi
  lock_state
  step packages ensure_packages
  step "agent engine" ensure_agent_docker
  step bridge ensure_bridge
  step certificates ensure_certs
  step htpasswd ensure_htpasswd
  step registry ensure_registry
  ensure_images
  ensure_targets
  step buildkitd ensure_buildkitd
  step "env files" write_env
  say "up in $(fmt_ms $(($(now_ms) - t0))); tests read $STATE/env.json"
}

cmd_down() {
  local purge=0
  [ "${1:-}" = --purge ] && purge=1
  [ "$(id -u)" = 0 ] || die "services.sh down needs root"
  lock_state
  stop_targets "$purge"
  step buildkitd stop_buildkitd
  step registry stop_registry
  step bridge remove_bridge
  if [ "$purge" = 1 ]; then
    rm -rf "$REG_DIR/data" "$IMG_DIR"/*.stamp "$STATE/env.json" "$STATE/env.sh"
    say "purged registry storage and target data (kept $CACHE_DIR)"
  fi
}

cmd_status() {
  local bad=0 line
  if timeout 10 docker info >/dev/null 2>&1; then
    say "agent engine   up ($(docker info --format '{{.ServerVersion}} {{.ID}}' 2>/dev/null))"
  else
    say "agent engine   DOWN"
    bad=1
  fi
  if ip -4 addr show dev "$BRIDGE" 2>/dev/null | grep -q "inet $BRIDGE_IP/24"; then
    say "bridge         up ($BRIDGE $BRIDGE_IP/24)"
  else
    say "bridge         DOWN"
    bad=1
  fi
  if [ -s "$REG_DIR/password" ] && registry_answers; then
    local have=""
    for line in debian:bookworm $DERIVED; do
      registry_has "${line%%:*}" "${line#*:}" && have+="${line} " || have+="${line}(missing) "
    done
    say "registry       up (https://$REGISTRY; $have)"
  else
    say "registry       DOWN"
    bad=1
  fi
  status_targets || bad=1
  if pid_alive "$BUILDKITD_PID" buildkitd && buildkitd_answers; then
    say "buildkitd      up ($BUILDKITD_TCP, unix://$BUILDKITD_SOCK)"
  else
    say "buildkitd      DOWN"
    bad=1
  fi
  if [ -s "$STATE/env.json" ]; then
    say "env            $STATE/env.json"
  else
    say "env            MISSING ($STATE/env.json)"
    bad=1
  fi
  return $bad
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *)
    warn "unknown command '${1:-}'"
    usage
    ;;
esac
