import java.nio.file.Files

/**
 * A stand-in for the Go binary in EXECUTING-mode tests: a POSIX sh script that records its
 * argv (NUL-separated) and environment per command, reads the credential files it is given,
 * and writes what the real commands write (manifest, JUnit XML, pinned file, --json report).
 * FAKE_EXIT_<COMMAND> sets a command's exit code; FAKE_ERROR its last error line, to which
 * FAKE_ERROR_ENV appends the values of the environment variables it names (a binary that
 * leaks a secret into its message; deploy/rollback put that message in the --json report too).
 * FAKE_SLEEP: seconds a command runs (to overlap parallel runs). deploy/rollback report the
 * first --host as their host.
 */
class FakeSlipway {
    static final String SCRIPT = '''#!/bin/sh
out="${FAKE_SLIPWAY_OUT:?}"
cmd="$1"
if [ "$cmd" = version ]; then echo "slipway ${FAKE_VERSION:-9.9.9} fake0000 linux/amd64"; exit 0; fi
printf '%s\\0' "$@" >"$out/argv-$cmd"
env >"$out/env-$cmd"
manifest=slipway-release.json; results=test-results; pinned=slipway-compose.pinned.yml; prev=; host=
for a in "$@"; do
  case "$prev" in
    --host) [ -n "$host" ] || host=$a ;;
    --manifest) manifest=$a ;;
    --results) results=$a ;;
    --pinned) pinned=$a ;;
    --env-file) cat "$a" >"$out/seen-env-file" ;;
    --identity) cat "$a" >"$out/seen-identity" ;;
    --known-hosts) cat "$a" >"$out/seen-known-hosts" ;;
  esac
  prev=$a
done
if [ -n "${DOCKER_CONFIG:-}" ]; then cat "$DOCKER_CONFIG/config.json" >"$out/seen-docker-config"; fi
echo "[$cmd] working" >&2
[ -z "${FAKE_SLEEP:-}" ] || sleep "$FAKE_SLEEP"
message="${FAKE_ERROR:-$cmd failed}"
for v in ${FAKE_ERROR_ENV:-}; do eval "message=\\"\\$message \\${$v}\\""; done
case "$cmd" in
  build)
    printf '%s' '{"schemaVersion":1,"project":"shop","commit":"0123456789abcdef0123456789abcdef01234567","shortCommit":"0123456789ab","branch":"main","dirty":false,"services":{"web":{"image":"reg.example/shop-web","tags":["0123456789abcdef0123456789abcdef01234567"],"imageId":"sha256:11"}}}' >"$manifest" ;;
  test)
    mkdir -p "$results/tests" "$results/logs"
    if [ "${FAKE_EXIT_TEST:-0}" = 3 ]; then
      printf '<testsuite><testcase name="a"/><testcase name="b"><failure message="no"/></testcase></testsuite>' >"$results/tests/junit.xml"
    else
      printf '<testsuite><testcase name="a"/><testcase name="b"/></testsuite>' >"$results/tests/junit.xml"
    fi
    echo "web log" >"$results/logs/web.log"
    printf '{"services":{"tests":{"exitCode":%s}}}' "${FAKE_EXIT_TEST:-0}" >"$results/summary.json" ;;
  push)
    printf '%s' '{"schemaVersion":1,"project":"shop","commit":"0123456789abcdef0123456789abcdef01234567","pinnedCompose":"'"$pinned"'","services":{"web":{"image":"reg.example/shop-web","tags":["0123456789abcdef0123456789abcdef01234567"],"digest":"sha256:dd"}}}' >"$manifest"
    echo "services: {web: {image: reg.example/shop-web@sha256:dd}}" >"$pinned" ;;
  deploy|rollback)
    # JSON-escaped as Go's encoder does (\\\\ \\" and <>& as \\u003c...); one-line messages only.
    error=$(printf '%s' "$message" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g' -e 's/</\\\\u003c/g' -e 's/>/\\\\u003e/g' -e 's/&/\\\\u0026/g')
    printf '{"hosts":[{"host":"%s","status":"ok"%s}]}\\n' "${host:-app1}" "${FAKE_ERROR_ENV:+,\\"error\\":\\"$error\\"}" ;;
esac
upper=$(echo "$cmd" | tr a-z A-Z)
eval "code=\\${FAKE_EXIT_$upper:-0}"
if [ "$code" != 0 ]; then printf 'slipway: error: %s\\n' "$message" >&2; fi
exit "$code"
'''

    final File dir
    final File bin
    final File out

    FakeSlipway() {
        dir = Files.createTempDirectory('fake-slipway').toFile()
        bin = new File(dir, 'slipway')
        bin.text = SCRIPT
        bin.setExecutable(true)
        out = new File(dir, 'out')
        out.mkdirs()
    }

    List<String> argv(String cmd) {
        File f = new File(out, "argv-${cmd}")
        if (!f.exists()) {
            return null
        }
        List<String> parts = f.getText('UTF-8').split('\u0000', -1).toList()
        return parts.subList(0, parts.size() - 1)
    }

    Map<String, String> env(String cmd) {
        Map<String, String> m = [:]
        String key = null
        // `env` output: NAME=value lines; a multi-line value continues on the next lines.
        for (String line : new File(out, "env-${cmd}").getText('UTF-8').split('\n')) {
            def mt = line =~ /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/
            if (mt.matches()) {
                key = mt.group(1)
                m[key] = mt.group(2)
            } else if (key != null) {
                m[key] = m[key] + '\n' + line
            }
        }
        return m
    }

    String seen(String what) {
        File f = new File(out, "seen-${what}")
        return f.exists() ? f.getText('UTF-8') : null
    }
}
