#!/bin/sh
# slipway pipeline for any CI (or none): build --pull, test, and on the
# default branch push and deploy. Copy it into your repository and run it from
# the checkout's root. Everything comes from the environment (see README.md,
# "Other CI systems"); secrets only from there, never from argv:
#   SLIPWAY_REGISTRY            image prefix, e.g. registry.example.com/shop
#   SLIPWAY_REGISTRY_USER       registry user
#   SLIPWAY_REGISTRY_PASSWORD   registry password or token (secret)
#   SLIPWAY_DEPLOY_HOST         [user@]host[:port] to deploy to
#   SLIPWAY_DEPLOY_DIR          deploy directory on the host, e.g. /srv/shop
#   SLIPWAY_SSH_KEY             the deploy key, PEM/OpenSSH text (secret)
#   SLIPWAY_SSH_PASSPHRASE      its passphrase, if any (secret; slipway reads it)
#   SLIPWAY_KNOWN_HOSTS         the host's known_hosts line(s), or
#   SLIPWAY_HOST_KEY            its key fingerprint, SHA256:... (ssh-keygen -lf)
#   SLIPWAY_APP_ENV             the app's runtime .env text (secret, optional)
#   SLIPWAY_SMOKE_URL           URL the host must answer 2xx after deploying (optional)
#   SLIPWAY_HEALTH_TIMEOUT      health gate limit (default 5m)
#   BRANCH_NAME, BUILD_NUMBER, BUILD_URL   set them from your CI's variables
#   SLIPWAY_DEFAULT_BRANCH      the branch that deploys (default main)
set -eu

# The binary: version and linux-amd64 archive sha256 from the slipway
# library's resources/slipway/release.json. SLIPWAY_DOWNLOAD_URL may point at
# a mirror ({version} {archive} {os} {arch}); the sha256 is checked anyway.
SLIPWAY_VERSION=${SLIPWAY_VERSION:-0.1.0}
SLIPWAY_SHA256=${SLIPWAY_SHA256:-c453bff5dd6bcfa01cb656f10a10382d8e8673543a7785d7454ad1c987e4bc3e}
release_url='https://github.com/slipway-dev/slipway/releases/download/v{version}/{archive}'
SLIPWAY_DOWNLOAD_URL=${SLIPWAY_DOWNLOAD_URL:-$release_url}

work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-ci.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# --- install (pinned, sha256 checked) ---
archive="slipway_${SLIPWAY_VERSION}_linux_amd64.tar.gz"
url=$(printf '%s\n' "$SLIPWAY_DOWNLOAD_URL" | sed -e "s|{version}|$SLIPWAY_VERSION|g" -e "s|{archive}|$archive|g" -e "s|{os}|linux|g" -e "s|{arch}|amd64|g")
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 3 -o "$work/$archive" "$url"
else
  wget -q -O "$work/$archive" "$url"
fi
if ! (cd "$work" && echo "$SLIPWAY_SHA256  $archive" | sha256sum -c -); then
  echo "pipeline.sh: checksum mismatch for $url: not the pinned slipway $SLIPWAY_VERSION; refusing to run it" >&2
  exit 1
fi
mkdir "$work/bin"
tar -xzf "$work/$archive" -C "$work/bin" slipway
PATH="$work/bin:$PATH"
slipway version

# --- build and test (every branch) ---
export BRANCH_NAME="${BRANCH_NAME:-$(git rev-parse --abbrev-ref HEAD)}"
slipway build --pull --registry "$SLIPWAY_REGISTRY"
slipway test # JUnit XML and logs: test-results/

# --- push and deploy (default branch only) ---
if [ "$BRANCH_NAME" != "${SLIPWAY_DEFAULT_BRANCH:-main}" ]; then
  echo "pipeline.sh: branch $BRANCH_NAME is not ${SLIPWAY_DEFAULT_BRANCH:-main}: no push, no deploy"
  exit 0
fi
slipway push
umask 077
printf '%s\n' "$SLIPWAY_SSH_KEY" >"$work/key"
if [ -n "${SLIPWAY_HOST_KEY:-}" ]; then
  set -- --host-key "$SLIPWAY_HOST_KEY"
else
  printf '%s\n' "${SLIPWAY_KNOWN_HOSTS:?set SLIPWAY_KNOWN_HOSTS or SLIPWAY_HOST_KEY: host keys are always checked}" >"$work/known_hosts"
  set -- --known-hosts "$work/known_hosts"
fi
if [ -n "${SLIPWAY_APP_ENV:-}" ]; then
  printf '%s\n' "$SLIPWAY_APP_ENV" >"$work/app.env"
  set -- "$@" --env-file "$work/app.env"
fi
slipway deploy --host "$SLIPWAY_DEPLOY_HOST" --dir "$SLIPWAY_DEPLOY_DIR" --identity "$work/key" "$@" --lock-wait 15m \
  --health-timeout "${SLIPWAY_HEALTH_TIMEOUT:-5m}" ${SLIPWAY_SMOKE_URL:+--smoke-url "$SLIPWAY_SMOKE_URL"}
