package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * Builds what a step hands to `sh`: the binary's argv from the checked parameters (Spec order,
 * every value through Shell.quote) and the small POSIX script around it that streams the
 * binary's stderr to the console while keeping a copy, saves its stdout and exit code, and
 * turns a docker config.json credential into DOCKER_CONFIG. Pure functions: no pipeline steps.
 */
class Cli implements Serializable {
    private static final long serialVersionUID = 1L

    /** The words after the binary's path: the command, then its flags. */
    @NonCPS
    static List<String> argv(String step, Map values) {
        List<String> words = [Shell.quote(Spec.command(step))]
        words.addAll(flagWords(Spec.params(step), values))
        if (Spec.json(step)) {
            words.add('--json')
        }
        return words
    }

    /** The words of the target flags only (hosts, dir, SSH), for the repair and status after an abort. */
    @NonCPS
    static List<String> targetWords(String step, Map values) {
        Map target = new LinkedHashMap()
        for (Map.Entry e : Spec.params(step).entrySet()) {
            if (Spec.isTarget((String) e.key)) {
                target.put(e.key, e.value)
            }
        }
        return flagWords(target, values)
    }

    @NonCPS
    private static List<String> flagWords(Map params, Map values) {
        List<String> words = []
        for (Map.Entry e : params.entrySet()) {
            Map p = (Map) e.value
            Object v = values[e.key]
            if (!p.flag || !Params.isSet(v)) {
                continue
            }
            switch (p.type) {
                case Spec.BOOLEAN:
                    words.add((String) p.flag)
                    break
                case Spec.LIST:
                    for (Object item : (List) v) {
                        words.add((String) p.flag)
                        words.add(p.hostUser && Params.isSet(values.sshCredentialsId) ? hostWord(item.toString()) : Shell.quote(item))
                    }
                    break
                case Spec.CREDENTIALS:
                    words.add((String) p.flag)
                    words.add(Shell.env((String) p.secretVar))
                    break
                default:
                    words.add((String) p.flag)
                    words.add(Shell.quote(v))
            }
        }
        return words
    }

    /**
     * A host without user@ gets the SSH credential's username, expanded by the shell:
     * "${SLIPWAY_SSH_USER:+$SLIPWAY_SSH_USER@}"'host' (nothing when the credential has none).
     */
    @NonCPS
    static String hostWord(String host) {
        if (host.contains('@')) {
            return Shell.quote(host)
        }
        String u = Spec.SSH_USER
        return '"${' + u + ':+$' + u + '@}"' + Shell.quote(host)
    }

    /**
     * The script for one run of the binary. o: bin (path), words (from argv), runDir,
     * dockerConfig (bind DOCKER_CONFIG to the file credential), showStdout (print stdout after
     * the run; off for --json commands whose stdout the step parses), mask (names of the
     * variables withCredentials bound to secret values: the tail of stderr and the --json stdout
     * the step reads back are saved with those values replaced by ****, because the step
     * repeats them after the block has closed, where Jenkins no longer masks them).
     * Runs under Jenkins' `sh -xe`: tracing and errexit are turned off first, so the binary's
     * exit code is captured instead of aborting the script.
     */
    @NonCPS
    static String script(Map o) {
        String bin = Shell.quote(o.bin)
        String cmd = bin + ' ' + Shell.join((List) o.words)
        List<String> lines = []
        lines.add('set +x +e')
        lines.add('run=' + Shell.quote(o.runDir))
        lines.add('rm -rf "$run" && mkdir -p "$run" || exit 1')
        if (o.dockerConfig) {
            // The credential file is linked, not copied: no second copy of the secret on disk.
            lines.add('DOCKER_CONFIG="$run/docker-config"; export DOCKER_CONFIG')
            lines.add('mkdir -m 700 "$DOCKER_CONFIG" && ln -s ' + Shell.env(Spec.DOCKER_CONFIG_FILE) + ' "$DOCKER_CONFIG/config.json" || exit 1')
        }
        // After an abort the binary finishes its cleanup alone: it keeps its whole log in
        // $run/log and writes its exit code to $run/exit (see afterInterrupt).
        lines.add('SLIPWAY_LOG_FILE="$run/log"; SLIPWAY_EXIT_FILE="$run/exit"; SLIPWAY_CANCEL_GRACE="${SLIPWAY_CANCEL_GRACE:-4s}"')
        lines.add('export SLIPWAY_LOG_FILE SLIPWAY_EXIT_FILE SLIPWAY_CANCEL_GRACE')
        lines.add("printf '%s\\n' " + Shell.quote('+ ' + cmd))
        // tee ignores the abort's SIGTERM, so the console keeps the binary's rollback lines.
        lines.add('{ ' + cmd + ' >"$run/stdout"; echo "$?" >"$run/rc"; } 2>&1 | { trap \'\' TERM; exec tee "$run/stderr"; }')
        lines.add('rc=$(cat "$run/rc" 2>/dev/null); [ -n "$rc" ] || rc=1')
        if (o.showStdout) {
            lines.add('cat "$run/stdout"')
        }
        List mask = (List) (o.mask ?: [])
        if (mask) {
            lines.add(maskFunction(mask))
            lines.add('tail -n 40 "$run/stderr" 2>/dev/null | slipway_mask >"$run/stderr.tail"; rm -f "$run/stderr" "$run/rc"')
            if (!o.showStdout) {
                lines.add('slipway_mask <"$run/stdout" >"$run/stdout.masked"; mv -f "$run/stdout.masked" "$run/stdout"')
            }
        } else {
            lines.add('tail -n 40 "$run/stderr" >"$run/stderr.tail" 2>/dev/null; rm -f "$run/stderr" "$run/rc"')
        }
        if (o.dockerConfig) {
            lines.add('rm -rf "$run/docker-config"')
        }
        lines.add('exit "$rc"')
        return lines.join('\n') + '\n'
    }

    /**
     * The awk program behind slipway_mask: replaces, line by line, every value of the variables
     * named in `names` (and each line of a multi-line value), raw and as Go's JSON encoder
     * escapes it, with ****, longest first. Values are read from ENVIRON: they never enter the
     * script's text or Groovy. No single quote in it: it is quoted as one shell word.
     */
    static final String MASK_AWK = '''
function esc(s,   o, i, c) {
  o = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\\\") c = "\\\\\\\\"; else if (c == "\\"") c = "\\\\\\""; else if (c == "\\n") c = "\\\\n"
    else if (c == "\\t") c = "\\\\t"; else if (c == "\\r") c = "\\\\r"; else if (c == "<") c = "\\\\u003c"
    else if (c == ">") c = "\\\\u003e"; else if (c == "&") c = "\\\\u0026"
    o = o c
  }
  return o
}
function add(s) { if (s != "" && !(s in seen)) { seen[s] = 1; m[++k] = s } }
BEGIN {
  k = 0; n = split(names, v, " ")
  for (i = 1; i <= n; i++) {
    s = ENVIRON[v[i]]
    if (s == "") continue
    add(s); add(esc(s))
    p = split(s, part, "\\n")
    for (j = 1; p > 1 && j <= p; j++) { add(part[j]); add(esc(part[j])) }
  }
  for (i = 2; i <= k; i++) { t = m[i]; for (j = i - 1; j >= 1 && length(m[j]) < length(t); j--) m[j + 1] = m[j]; m[j + 1] = t }
}
{
  line = $0
  for (i = 1; i <= k; i++) {
    out = ""
    while ((p = index(line, m[i])) > 0) { out = out substr(line, 1, p - 1) "****"; line = substr(line, p + length(m[i])) }
    line = out line
  }
  print line
}
'''

    /** The shell function slipway_mask (a filter, stdin to stdout) over the variables named. */
    @NonCPS
    static String maskFunction(List names) {
        List<String> checked = []
        for (Object n : names) {
            Shell.env(n.toString()) // throws unless a variable name
            checked.add(n.toString())
        }
        return 'slipway_mask() { awk -v names=' + Shell.quote(checked.join(' ')) + ' ' + Shell.quote(MASK_AWK.trim()) + '; }'
    }

    /** A name part no other run of this build shares (parallel branches run steps at once). */
    @NonCPS
    static String unique() {
        return UUID.randomUUID().toString().substring(0, 8)
    }

    /**
     * The script a step runs after its `sh` was interrupted (abort, timeout): it waits (at most
     * o.wait seconds) for the binary's exit file, prints the log lines the console lost when the
     * pipe died, and, for deploy and rollback (o.repair, o.status: argv words), runs
     * `rollback --repair` unless the binary ended cleanly before changing anything or done (0, 1,
     * 2): it restores hosts left changed (exit 5, or no exit code: the binary was killed) and
     * releases a lock a dead run left, and is a no-op on a whole host and then `status`, so the build log says what state each host is in.
     */
    @NonCPS
    static String afterInterrupt(Map o) {
        String bin = Shell.quote(o.bin)
        List<String> lines = []
        lines.add('set +x +e')
        lines.add('run=' + Shell.quote(o.runDir))
        lines.add('i=0; while [ ! -s "$run/exit" ] && [ "$i" -lt ' + ((int) o.wait) + ' ]; do sleep 1; i=$((i + 1)); done')
        lines.add('if [ -f "$run/log" ]; then n=$(wc -c <"$run/stderr" 2>/dev/null || echo 0); tail -c +$((n + 1)) "$run/log"; fi')
        lines.add('rc=$(cat "$run/exit" 2>/dev/null)')
        lines.add('echo "slipway: interrupted; the binary exited ${rc:-without an exit code (killed)}"')
        if (o.repair) {
            lines.add('case "$rc" in')
            lines.add('  0|1|2) ;;')
            lines.add('  *) echo "slipway: hosts may be left changed: slipway rollback --repair"')
            lines.add('     ' + bin + ' ' + Shell.join((List) o.repair) + ' ;;')
            lines.add('esac')
        }
        if (o.status) {
            lines.add(bin + ' ' + Shell.join((List) o.status))
        }
        lines.add('exit 0')
        return lines.join('\n') + '\n'
    }

    /** Whether a step's exception is the build's interruption (abort, timeout): FlowInterruptedException is one. */
    @NonCPS
    static boolean interrupted(Throwable e) {
        return e instanceof InterruptedException
    }

    /** The binary's last error line from the tail of its stderr ("slipway: error: ..."). */
    @NonCPS
    static String lastError(String tail) {
        if (tail == null) {
            return ''
        }
        String[] lines = tail.replaceAll('\u001B\\[[0-9;]*[A-Za-z]', '').split('\r?\n')
        String last = ''
        for (int i = lines.length - 1; i >= 0; i--) {
            String l = lines[i].trim()
            int at = l.indexOf('slipway: error: ')
            if (at >= 0) {
                return clip(l.substring(at + 'slipway: error: '.length()))
            }
            if (!last && l) {
                last = l
            }
        }
        return clip(last)
    }

    @NonCPS
    private static String clip(String s) {
        return s.length() > 500 ? s.substring(0, 497) + '...' : s
    }

    /**
     * Under Jenkins the binary's "ssh-keygen -R host -f <file>" advice names a secret file copy
     * that is already deleted (and masked in the log): name the credential to update instead.
     */
    @NonCPS
    static String advice(String tail, Map values) {
        if (tail == null || !tail.contains('HOST KEY CHANGED') || !Params.isSet(values.knownHostsCredentialsId)) {
            return ''
        }
        return " (if the new key is confirmed by the server's administrator, update the known_hosts Secret file credential " +
                "'${values.knownHostsCredentialsId}' with the line printed above; ssh-keygen -R on the agent does not apply)".toString()
    }

    /** The message a failed run becomes: "<step>: slipway <command> failed (exit N: meaning): line". */
    @NonCPS
    static String failure(String step, int code, String errorLine) {
        String m = "${step}: slipway ${Spec.command(step)} failed (exit ${code}: ${Spec.exitMeaning(code)})"
        if (errorLine) {
            m += ': ' + errorLine
        }
        return m.toString()
    }
}
