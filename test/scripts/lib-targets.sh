# shellcheck shell=bash
# SSH targets (sourced by services.sh): per target a network namespace
# slw-<name> on bridge slw0 with its own dockerd and sshd, reachable as
# deploy@10.213.0.(10+i). Daemons are started with nsenter --net (not
# `ip netns exec`, which remounts /sys and breaks dockerd's cgroups).

SSH_DIR=$STATE/ssh

# Compose v2 (the `docker compose` CLI plugin, what most users run): Debian 12
# ships only docker-compose v1, so v2 is built from source (Go module proxy)
# once per version into the cache. Targets listed in COMPOSE_V2_TARGETS get it
# as a plugin in a per-target DOCKER_CONFIG (their sshd sets DOCKER_CONFIG),
# the others keep v1 only, so both paths run against real servers. The agent
# copy is $COMPOSE_V2 (env.sh: SLIPWAY_TEST_COMPOSE_V2, env.json: ComposeV2).
COMPOSE_V2_VERSION=v2.40.3
COMPOSE_V2_TARGETS=${SLIPWAY_COMPOSE_V2_TARGETS-t3}
COMPOSE_V2_CACHE=$STATE/cache/compose-$COMPOSE_V2_VERSION/docker-compose
COMPOSE_V2=$STATE/compose-v2/docker-compose

compose_v2_target() { grep -qxF -- "$1" <<<"$(tr ' ' '\n' <<<"$COMPOSE_V2_TARGETS")"; }
target_docker_config() { printf '%s/docker-config' "$(target_dir "$1")"; }
target_compose() { if compose_v2_target "$1"; then echo v2; else echo v1; fi; }

# The binary reports its version (a build that says "dev" or died is rebuilt).
compose_v2_ok() { [ -x "$1" ] && [ "$("$1" version --short 2>/dev/null)" = "${COMPOSE_V2_VERSION#v}" ]; }

ensure_compose_v2() {
  local t0 src log=$STATE/cache/compose-$COMPOSE_V2_VERSION.log dir
  if compose_v2_ok "$COMPOSE_V2_CACHE"; then
    NOTE="$COMPOSE_V2_VERSION cached"
  else
    command -v go >/dev/null || die "building Compose $COMPOSE_V2_VERSION needs Go (https://go.dev/dl); or set SLIPWAY_COMPOSE_V2_TARGETS= to skip"
    t0=$(now_ms)
    mkdir -p "$(dirname "$COMPOSE_V2_CACHE")"
    src=$(mktemp -d "${TMPDIR:-/tmp}/slipway-compose-src.XXXXXXXX")
    # `go install ...@version` refuses compose's go.mod (exclude directives):
    # build inside a writable copy of the module instead.
    if ! {
      dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_V2_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
        [ -n "$dir" ] && cp -r "$dir/." "$src" && chmod -R u+w "$src" &&
        (cd "$src" && GOFLAGS= CGO_ENABLED=0 go build -trimpath -buildvcs=false \
          -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_V2_VERSION" \
          -o "$COMPOSE_V2_CACHE.tmp" ./cmd)
    } >"$log" 2>&1; then
      rm -rf "$src" "$COMPOSE_V2_CACHE.tmp"
      tail -n 20 "$log" >&2 || true
      die "building Compose $COMPOSE_V2_VERSION failed; see $log"
    fi
    rm -rf "$src"
    mv -f "$COMPOSE_V2_CACHE.tmp" "$COMPOSE_V2_CACHE"
    compose_v2_ok "$COMPOSE_V2_CACHE" || die "the Compose build $COMPOSE_V2_CACHE does not report version ${COMPOSE_V2_VERSION#v}; see $log"
    NOTE="built $COMPOSE_V2_VERSION in $(fmt_ms $(($(now_ms) - t0))) (log $log)"
  fi
  # install (not ln): a stable copy outside the cache, replaced atomically.
  if ! cmp -s "$COMPOSE_V2_CACHE" "$COMPOSE_V2"; then
    install -D -m 0755 "$COMPOSE_V2_CACHE" "$COMPOSE_V2.tmp" && mv -f "$COMPOSE_V2.tmp" "$COMPOSE_V2"
  fi
}

# install_target_compose NAME: v2 targets get the plugin in their own
# DOCKER_CONFIG (owned by deploy: docker may write config.json there); v1
# targets have no such directory, so `docker compose` fails there.
install_target_compose() {
  local name=$1 cfg p
  cfg=$(target_docker_config "$name")
  if ! compose_v2_target "$name"; then
    rm -rf "$cfg"
    return 0
  fi
  p=$cfg/cli-plugins/docker-compose
  mkdir -p "$cfg/cli-plugins"
  chown "$DEPLOY_USER:$DEPLOY_USER" "$cfg"
  chmod 0700 "$cfg"
  chmod 0755 "$cfg/cli-plugins"
  if ! cmp -s "$COMPOSE_V2" "$p"; then
    install -m 0755 "$COMPOSE_V2" "$p.tmp" && mv -f "$p.tmp" "$p"
  fi
}

ensure_deploy_user() {
  getent group docker >/dev/null || groupadd --system docker
  if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd -m -s /bin/bash -G docker "$DEPLOY_USER"
  fi
  id -nG "$DEPLOY_USER" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$DEPLOY_USER"
  # useradd leaves the account locked ('!'), which sshd refuses with UsePAM no.
  if [ "$(getent shadow "$DEPLOY_USER" | cut -d: -f2)" != '*' ]; then
    usermod -p '*' "$DEPLOY_USER"
  fi
}

ensure_client_key() {
  mkdir -p "$SSH_DIR"
  chmod 0755 "$SSH_DIR"
  if [ ! -s "$SSH_DIR/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "slipway-test-client" -f "$SSH_DIR/id_ed25519"
  fi
  chmod 0600 "$SSH_DIR/id_ed25519"
}

# The namespace, the veth pair into slw0 and the target's address.
ensure_netns() {
  local name=$1 ns=slw-$1 ip hv=slwh-$1 pv=slwp-$1
  ip=$(target_ip "$name")
  [ -e "/run/netns/$ns" ] || ip netns add "$ns"
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip link del "$hv" 2>/dev/null || true
    ip link add "$hv" type veth peer name "$pv"
    ip link set "$pv" netns "$ns"
    ip -n "$ns" link set "$pv" name eth0
  fi
  ip link set "$hv" master "$BRIDGE"
  ip link set "$hv" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $ip/24" || ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" route replace default via "$BRIDGE_IP"
}

ensure_host_keys() {
  local name=$1 dir t ip
  dir=$(target_dir "$name")
  ip=$(target_ip "$name")
  for t in ed25519 ecdsa rsa; do
    [ -s "$dir/ssh_host_${t}_key" ] ||
      ssh-keygen -q -t "$t" -N '' -C "slipway-test-$name" -f "$dir/ssh_host_${t}_key"
  done
  chmod 0600 "$dir"/ssh_host_*_key
  : >"$dir/known_hosts.tmp"
  for t in ed25519 ecdsa rsa; do
    awk -v h="$ip" -v p1="$PORT_NO_FORWARDING" -v p2="$PORT_BARE" -v p3="$PORT_NO_COMPOSE" \
      '{print h, $1, $2; print "[" h "]:" p1, $1, $2; print "[" h "]:" p2, $1, $2; print "[" h "]:" p3, $1, $2}' \
      "$dir/ssh_host_${t}_key.pub" >>"$dir/known_hosts.tmp"
  done
  mv "$dir/known_hosts.tmp" "$dir/known_hosts"
  cp "$SSH_DIR/id_ed25519.pub" "$dir/authorized_keys"
  chmod 0644 "$dir/known_hosts" "$dir/authorized_keys"
}

# Extra sshd ports of every target (see write_sshd_config).
PORT_NO_FORWARDING=2222
PORT_BARE=2223
PORT_NO_COMPOSE=2224

bare_bin() { printf '%s/bare-bin' "$STATE"; }
nocompose_bin() { printf '%s/nocompose-bin' "$STATE"; }

# ensure_bare_bin: PATH directories with the system's commands except the
# docker CLI and Compose (the targets' "Engine and sshd only" port), and
# except Compose alone (the "Engine and docker CLI, no Compose" port).
ensure_bare_bin() {
  bin_without "$(bare_bin)" 'docker docker-compose docker-init docker-proxy dockerd dockerd-rootless*'
  bin_without "$(nocompose_bin)" 'docker-compose'
  mkdir -p "$(nocompose_bin)-docker-config"
}

# bin_without DIR PATTERNS: DIR gets links to the system's commands whose
# names match none of the (space-separated, glob) patterns.
bin_without() {
  local dir=$1 pats=$2 f n p skip
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  for f in /usr/local/sbin/* /usr/local/bin/* /usr/sbin/* /usr/bin/*; do
    [ -x "$f" ] || continue
    n=${f##*/}
    skip=0
    for p in $pats; do
      # shellcheck disable=SC2254 # p is a glob on purpose
      case $n in $p) skip=1 ;; esac
    done
    [ $skip = 0 ] || continue
    [ -e "$dir.tmp/$n" ] || ln -s "$f" "$dir.tmp/$n"
  done
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  chmod 0755 "$dir"
}

write_sshd_config() {
  local name=$1 dir ip setenv
  dir=$(target_dir "$name")
  ip=$(target_ip "$name")
  setenv="DOCKER_HOST=unix://$(target_sock "$name")"
  if compose_v2_target "$name"; then
    # Where `docker` looks for CLI plugins: this target's compose v2.
    setenv+=" DOCKER_CONFIG=$(target_docker_config "$name")"
  fi
  local want
  want=$(
    cat <<EOF
# sshd for slipway test target $name (written by test/scripts/services.sh)
Port 22
Port $PORT_NO_FORWARDING
Port $PORT_BARE
Port $PORT_NO_COMPOSE
ListenAddress $ip
HostKey $dir/ssh_host_ed25519_key
HostKey $dir/ssh_host_ecdsa_key
HostKey $dir/ssh_host_rsa_key
PidFile $dir/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $DEPLOY_USER
StrictModes no
AuthorizedKeysFile $dir/authorized_keys
# The deploy user's docker / docker-compose talk to THIS target's engine.
SetEnv $setenv
Subsystem sftp /usr/lib/openssh/sftp-server
# Tests open many connections at once (parallel deploys).
MaxStartups 100:30:200
MaxSessions 50
UseDNS no
LogLevel VERBOSE
# Port $PORT_NO_FORWARDING: stream-local forwarding forbidden, so slipway must
# reach the engine through \`docker system dial-stdio\`.
Match LocalPort $PORT_NO_FORWARDING
  AllowStreamLocalForwarding no
# Port $PORT_BARE: a server with only Docker Engine and sshd: no docker CLI,
# no Compose on PATH.
Match LocalPort $PORT_BARE
  SetEnv PATH=$(bare_bin) DOCKER_HOST=unix://$(target_sock "$name")
# Port $PORT_NO_COMPOSE: Docker Engine and its CLI, no Compose (neither
# docker-compose nor the plugin: no DOCKER_CONFIG with cli-plugins).
Match LocalPort $PORT_NO_COMPOSE
  SetEnv PATH=$(nocompose_bin) DOCKER_HOST=unix://$(target_sock "$name") DOCKER_CONFIG=$(nocompose_bin)-docker-config
EOF
  )
  if [ ! -f "$dir/sshd_config" ] || [ "$(cat "$dir/sshd_config")" != "$want" ]; then
    printf '%s\n' "$want" >"$dir/sshd_config"
    return 0
  fi
  return 1
}

# The engine API over the target's socket (curl: much faster than the docker CLI).
target_api() { curl -sf --max-time 5 --unix-socket "$(target_sock "$1")" "http://localhost$2"; }
target_docker_ok() { [ "$(target_api "$1" /_ping 2>/dev/null)" = OK ]; }
target_engine_id() { target_api "$1" /info | grep -o '"ID":"[^"]*"' | head -n1 | cut -d'"' -f4; }

start_target_dockerd() {
  local name=$1 i=${1#t} dir sock
  dir=$(target_dir "$name")
  sock=$(target_sock "$name")
  # Its own daemon.json, so the agent's /etc/docker/daemon.json does not
  # apply; its own key file gives it its own engine ID (docker info .ID).
  local want changed=0
  want="{\"deprecated-key-path\": \"$dir/key.json\"}"
  if [ ! -f "$dir/daemon.json" ] || [ "$(cat "$dir/daemon.json")" != "$want" ]; then
    printf '%s\n' "$want" >"$dir/daemon.json"
    changed=1
  fi
  if pid_alive "$dir/docker.pid" "$sock"; then
    [ "$changed" = 1 ] || return 0
    stop_pidfile "$dir/docker.pid" "$sock" 40
  fi
  rm -f "$dir/docker.pid"
  # Leftovers of a dockerd that died (or of an earlier machine session):
  # its containerd, shims and mounts under the exec-root.
  cleanup_target_runtime "$name"
  mkdir -p "$dir/docker" "/run/slw/$name"
  start_bg "$dir/dockerd.log" nsenter --net="/run/netns/slw-$name" dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/docker" \
    --exec-root "/run/slw/$name" \
    -H "unix://$sock" \
    --pidfile "$dir/docker.pid" \
    --bip "192.168.$((200 + i)).1/24" \
    --default-address-pool "base=172.$((20 + i)).0.0/16,size=24" \
    -G docker
  STARTED+="dockerd "
}

start_target_sshd() {
  local name=$1 dir changed=0
  dir=$(target_dir "$name")
  write_sshd_config "$name" && changed=1
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd_config of $name is invalid: $dir/sshd_config"
  if pid_alive "$dir/sshd.pid" "$dir/sshd_config"; then
    # SIGHUP makes sshd re-exec with the new configuration.
    [ "$changed" = 0 ] || kill -HUP "$(cat "$dir/sshd.pid")"
    return 0
  fi
  rm -f "$dir/sshd.pid"
  start_bg "$dir/sshd.log" nsenter --net="/run/netns/slw-$name" /usr/sbin/sshd \
    -f "$dir/sshd_config" -E "$dir/sshd.log"
  STARTED+="sshd "
}

setup_target() {
  local name=$1 dir
  dir=$(target_dir "$name")
  mkdir -p "$dir/srv"
  chmod 0755 "$STATE/targets" "$dir"
  chown "$DEPLOY_USER:$DEPLOY_USER" "$dir/srv"
  if ! pid_alive "$dir/docker.pid" "$(target_sock "$name")"; then
    # Starting the engine afresh: start from a clean namespace too (no
    # bridges or iptables rules of an engine that died, no orphaned sshd).
    stop_pidfile "$dir/sshd.pid" "$dir/sshd_config" 5
    cleanup_target_runtime "$name"
    ip netns del "slw-$name" 2>/dev/null || true
    ip link del "slwh-$name" 2>/dev/null || true
  fi
  ensure_netns "$name"
  ensure_host_keys "$name"
  install_target_compose "$name"
  STARTED=""
  start_target_dockerd "$name"
  start_target_sshd "$name"
  NOTE="$(target_ip "$name") ${STARTED:+started ${STARTED% }}"
  [ -n "$STARTED" ] || NOTE+="running"
}

ssh_target() {
  local name=$1
  shift
  ssh -i "$SSH_DIR/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$(target_dir "$name")/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=5 -o LogLevel=ERROR "$DEPLOY_USER@$(target_ip "$name")" "$@"
}

# verify_target NAME: the engine answers, and over SSH deploy's docker talks
# to that same engine and docker-compose runs.
verify_target() {
  local name=$1 dir want got
  dir=$(target_dir "$name")
  wait_until 60 "dockerd $name" target_docker_ok "$name" || {
    tail -n 20 "$dir/dockerd.log" >&2 || true
    die "dockerd of $name did not answer on $(target_sock "$name") within 60 s; see $dir/dockerd.log"
  }
  want=$(target_engine_id "$name")
  # docker-compose (v1, Python) takes ~3 s to start: check it once per
  # daemon start, recorded by the daemons' pids.
  local pids compose="docker-compose version --short" cmd
  pids="$(cat "$dir/docker.pid" "$dir/sshd.pid" 2>/dev/null | tr '\n' ' ')"
  cmd='docker info --format "{{.ID}}"'
  if compose_v2_target "$name"; then
    # The v2 plugin starts fast: check it every time (it comes from sshd's
    # DOCKER_CONFIG, which a reload changes without changing pids).
    cmd+=' && echo "v2 $(docker compose version --short)"'
  elif [ "$(cat "$dir/verified" 2>/dev/null)" != "$pids" ]; then
    cmd+=" && $compose"
  fi
  local i
  for ((i = 0; i < 30; i++)); do
    got=$(ssh_target "$name" "$cmd" 2>&1) && break
    # 255: ssh itself failed (sshd still starting); anything else is final.
    [ $? = 255 ] || break
    sleep 0.5
  done
  if [ $i = 30 ]; then
    tail -n 20 "$dir/sshd.log" >&2 || true
    die "ssh deploy@$(target_ip "$name") failed for 15 s: $got (see $dir/sshd.log)"
  fi
  [ -n "$want" ] && [ "$(head -n1 <<<"$got")" = "$want" ] ||
    die "over SSH, deploy's docker on $name said '$got', expected engine '$want' (SetEnv DOCKER_HOST in $dir/sshd_config)"
  [ "$(head -n1 <<<"$got")" = "$want" ] ||
    die "over SSH, deploy's docker on $name talks to engine $(head -n1 <<<"$got"), not $want (SetEnv DOCKER_HOST in $dir/sshd_config)"
  if compose_v2_target "$name" && [ "$(tail -n1 <<<"$got")" != "v2 ${COMPOSE_V2_VERSION#v}" ]; then
    die "over SSH, deploy's \`docker compose version --short\` on $name said '$(tail -n1 <<<"$got")', expected v2 ${COMPOSE_V2_VERSION#v} (plugin in $(target_docker_config "$name")/cli-plugins, SetEnv DOCKER_CONFIG in $dir/sshd_config)"
  fi
  printf '%s\n' "$pids" >"$dir/verified"
  if [ "$(wc -l <<<"$got")" -gt 1 ]; then
    echo "ssh ok, engine ${want:0:14}, compose $(tail -n1 <<<"$got")"
  else
    echo "ssh ok, engine ${want:0:14}"
  fi
}

ensure_targets() {
  [ "$NTARGETS" -gt 0 ] || return 0
  local name pids=() names=() i rc=0 t0
  mkdir -p "$STATE/targets" /run/sshd /run/slw
  chmod 0755 /run/sshd
  ensure_deploy_user
  ensure_client_key
  step "target PATHs" ensure_bare_bin
  if [ -n "$COMPOSE_V2_TARGETS" ]; then
    step "compose v2" ensure_compose_v2
  fi
  for name in $(target_names); do
    step "target $name" setup_target "$name"
  done
  {
    cat "$STATE"/targets/t*/known_hosts 2>/dev/null || true
  } >"$SSH_DIR/known_hosts.tmp"
  mv "$SSH_DIR/known_hosts.tmp" "$SSH_DIR/known_hosts"
  t0=$(now_ms)
  for name in $(target_names); do
    verify_target "$name" >"$(target_dir "$name")/verify.out" 2>&1 &
    pids+=($!)
    names+=("$name")
  done
  for i in "${!pids[@]}"; do
    name=${names[$i]}
    if wait "${pids[$i]}"; then
      printf 'services: %-18s %-52s (%s)\n' "verify $name" "$(tail -n1 "$(target_dir "$name")/verify.out")" \
        "$(fmt_ms $(($(now_ms) - t0)))"
    else
      cat "$(target_dir "$name")/verify.out" >&2
      rc=1
    fi
  done
  [ "$rc" = 0 ] || die "SSH targets failed verification (see above)"
}

# Pids of processes whose command line mentions PATTERN (a path unique to
# one target, e.g. its exec-root), for cleaning up after a killed dockerd.
pids_matching() {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1"; then
      echo "${p#/proc/}"
    fi
  done
}

# cleanup_target_runtime NAME: with the target's dockerd stopped, end what it
# left (containerd, shims: their command lines name its exec-root), unmount
# what is mounted under its exec-root and data-root, clear the exec-root.
cleanup_target_runtime() {
  local name=$1 dir p m
  dir=$(target_dir "$name")
  for p in $(pids_matching "/run/slw/$name/"); do
    [ "$p" = $$ ] || kill -KILL "$p" 2>/dev/null || true
  done
  for m in $(awk -v a="/run/slw/$name/" -v b="$dir/" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "/run/slw/$name"
  rm -f "$(target_sock "$name")"
}

stop_target() {
  local name=$1 purge=$2 dir
  dir=$(target_dir "$name")
  stop_pidfile "$dir/sshd.pid" "$dir/sshd_config" 5
  # dockerd stops its containers (10 s each, in parallel) before exiting.
  stop_pidfile "$dir/docker.pid" "$(target_sock "$name")" 40
  cleanup_target_runtime "$name"
  ip netns del "slw-$name" 2>/dev/null || true
  ip link del "slwh-$name" 2>/dev/null || true
  if [ "$purge" = 1 ]; then
    rm -rf "$dir"
    NOTE="stopped, data deleted"
  else
    NOTE="stopped"
  fi
}

stop_targets() {
  local purge=${1:-0} name names
  names=$(
    {
      ls "$STATE/targets" 2>/dev/null || true
      ip netns list 2>/dev/null | awk '$1 ~ /^slw-/ {sub(/^slw-/, "", $1); print $1}'
    } | sort -u
  )
  for name in $names; do
    step "target $name" stop_target "$name" "$purge"
  done
}

status_targets() {
  local name bad=0 d s
  for name in $(target_names); do
    d="DOWN"
    s="DOWN"
    target_docker_ok "$name" && d="up"
    pid_alive "$(target_dir "$name")/sshd.pid" "$(target_dir "$name")/sshd_config" && s="up"
    [ "$d" = up ] && [ "$s" = up ] || bad=1
    say "$(printf '%-14s dockerd %s, sshd %s (%s@%s, %s)' "target $name" "$d" "$s" "$DEPLOY_USER" "$(target_ip "$name")" "$(target_sock "$name")")"
  done
  return $bad
}
