package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * Obtains the slipway binary for the agent a step runs on, in this order:
 *   1. an explicit path: the step's `tool:` parameter, else the SLIPWAY_BIN environment variable;
 *   2. a verified cached copy (sha256 equal to the pinned one): in SLIPWAY_CACHE_DIR/<sha256>/
 *      when that agent-wide cache is set, else in the workspace's own tmp dir (<workspace>@tmp,
 *      never a dir('sub')@tmp inside the workspace);
 *   3. this build's stash, when an earlier step downloaded it on another node;
 *   4. a download of the version pinned in resources/slipway/release.json, retried, whose
 *      sha256 must match the pinned one (a mismatch stops the build). A mirror that needs a
 *      login gets it from SLIPWAY_DOWNLOAD_CREDENTIALS_ID through a netrc file, never argv.
 * Every copy is assembled in a fresh staging dir (mktemp -d) and moved into place with one
 * rename, so concurrent first uses (parallel branches, builds sharing a cache) never see or
 * clobber a half-written file. Then `slipway version` runs once per build and node.
 */
class Binary implements Serializable {
    private static final long serialVersionUID = 1L

    static final String PINNED = 'slipway/release.json'
    static final int ATTEMPTS = 3
    static final String DOWNLOAD_USER = 'SLIPWAY_DOWNLOAD_USER'
    static final String DOWNLOAD_PASSWORD = 'SLIPWAY_DOWNLOAD_PASSWORD'

    // Not private: closures under CPS cannot always reach private members of their class.
    final def steps
    final String step

    Binary(def steps, String step) {
        this.steps = steps
        this.step = step
    }

    /** The library's state dir on this node: <workspace>@tmp, whatever dir() the step runs in. */
    static String stateDir(def steps) {
        String ws = steps.env.WORKSPACE
        if (ws) {
            return ws + '@tmp'
        }
        return steps.pwd(tmp: true)
    }

    String obtain(String tool) {
        if (!steps.isUnix()) {
            steps.error("${step}: Windows agents are not supported; run this step on a Linux or macOS agent with sh, curl, git and the docker CLI")
        }
        String explicit = tool ?: steps.env.SLIPWAY_BIN
        if (explicit) {
            versionOnce(explicit, null, tool ? "the tool: parameter" : 'SLIPWAY_BIN')
            return explicit
        }
        Map pinned = Results.pinned(steps.libraryResource(PINNED))
        String version = pinned.version
        String platform = platform()
        Map want = (Map) ((Map) pinned.platforms)[platform]
        if (want == null) {
            steps.error("${step}: the library pins no slipway ${version} binary for ${platform} (pinned: ${((Map) pinned.platforms).keySet().join(', ')}); " +
                    "give the step tool: '/path/to/slipway' or set SLIPWAY_BIN")
        }
        String cache = steps.env.SLIPWAY_CACHE_DIR
        String dir = cache ? "${cache}/${want.binarySha256}" : "${stateDir(steps)}/slipway/${version}/${platform}"
        String bin = "${dir}/slipway"
        String cached = cache ? 'the agent cache' : 'the cached copy'

        if (steps.fileExists(bin)) {
            String got = sha256(bin)
            if (got == want.binarySha256) {
                versionOnce(bin, version, cached)
                return bin
            }
            steps.echo("${step}: the cached ${bin} has sha256 ${got}, not the pinned ${want.binarySha256}; fetching it again")
        }

        String stashVar = stashVariable(platform)
        String stashed = stashOf((String) steps.env[stashVar], version)
        if (stashed) {
            String stage = stage(dir)
            steps.dir(stage) {
                steps.unstash(stashed)
            }
            String got = sha256("${stage}/slipway")
            if (got != want.binarySha256) {
                remove(stage)
                steps.error("${step}: checksum mismatch for the stashed slipway binary: expected sha256 ${want.binarySha256}, got ${got}; refusing to run it")
            }
            install(stage, bin)
            versionOnce(bin, version, 'this build\'s stash')
            return bin
        }

        download(pinned, platform, want, dir, bin)
        versionOnce(bin, version, 'the download')
        // A name of its own per download: parallel branches that both downloaded never write
        // one stash at the same time; the variable names a stash only once it is complete.
        String name = "${stashName(platform)}-${Cli.unique()}"
        steps.dir(dir) {
            steps.stash(name: name, includes: 'slipway')
        }
        steps.env[stashVar] = "${version} ${name}"
        return bin
    }

    void download(Map pinned, String platform, Map want, String dir, String bin) {
        String url = url((String) (steps.env.SLIPWAY_DOWNLOAD_URL ?: pinned.url), (String) pinned.version, platform, (String) want.archive)
        String shown = redact(url)
        String credentialsId = steps.env.SLIPWAY_DOWNLOAD_CREDENTIALS_ID
        String stage = stage(dir)
        String part = "${stage}/${want.archive}"
        String script = curlScript(url, part, "${stage}/netrc", credentialsId ? host(url) : null)
        int attempt = 0
        boolean ok = false
        while (!ok && attempt < ATTEMPTS) {
            attempt++
            int rc
            if (credentialsId) {
                steps.withCredentials([steps.usernamePassword(credentialsId: credentialsId, usernameVariable: DOWNLOAD_USER, passwordVariable: DOWNLOAD_PASSWORD)]) {
                    rc = steps.sh(label: 'slipway: download the binary', returnStatus: true, script: script)
                }
            } else {
                rc = steps.sh(label: 'slipway: download the binary', returnStatus: true, script: script)
            }
            if (rc == 0) {
                ok = true
            } else {
                steps.echo("${step}: downloading ${shown} failed (curl exit ${rc}, attempt ${attempt} of ${ATTEMPTS})")
                if (attempt < ATTEMPTS) {
                    steps.sleep(time: 5 * attempt, unit: 'SECONDS')
                }
            }
        }
        if (!ok) {
            remove(stage)
            steps.error("${step}: could not download slipway ${pinned.version} from ${shown} after ${ATTEMPTS} attempts; " +
                    'check the agent\'s network and proxy settings, or point SLIPWAY_DOWNLOAD_URL at a mirror (the pinned sha256 is still checked; ' +
                    'a mirror that needs a login: SLIPWAY_DOWNLOAD_CREDENTIALS_ID)')
        }
        String got = sha256(part)
        if (got != want.sha256) {
            remove(stage)
            steps.error("${step}: checksum mismatch for ${shown}: expected sha256 ${want.sha256}, got ${got}; " +
                    'refusing to run it (a corrupt download, or not the release this library version pins)')
        }
        steps.sh(label: 'slipway: unpack the binary', script: "set +x -e\ntar -xzf ${Shell.quote(part)} -C ${Shell.quote(stage)} slipway\n")
        got = sha256("${stage}/slipway")
        if (got != want.binarySha256) {
            remove(stage)
            steps.error("${step}: checksum mismatch for the slipway binary in ${want.archive}: expected sha256 ${want.binarySha256}, got ${got}; refusing to run it")
        }
        install(stage, bin)
    }

    /** A fresh, private staging dir next to where the binary goes (same file system: the rename is atomic). */
    String stage(String dir) {
        String out = steps.sh(label: 'slipway: staging dir', returnStdout: true,
                script: "set +x -e\nmkdir -p ${Shell.quote(dir)}\nmktemp -d ${Shell.quote(dir + '/.stage.XXXXXX')}\n")
        return out.trim()
    }

    /** Moves the verified binary into place with one rename, then drops the staging dir. */
    void install(String stage, String bin) {
        steps.sh(label: 'slipway: install the binary', script: 'set +x -e\n' +
                "chmod 755 ${Shell.quote(stage + '/slipway')}\n" +
                "mv -f ${Shell.quote(stage + '/slipway')} ${Shell.quote(bin)}\n" +
                "rm -rf ${Shell.quote(stage)}\n")
    }

    void remove(String stage) {
        steps.sh(label: 'slipway: clean up', script: "set +x\nrm -rf ${Shell.quote(stage)}\n")
    }

    /** Runs `slipway version` the first time this build uses bin on this node. */
    void versionOnce(String bin, String version, String source) {
        String key = "${steps.env.NODE_NAME ?: ''}:${bin}"
        if (steps.env.SLIPWAY_BINARY == key) {
            return
        }
        String out = steps.sh(label: 'slipway version', returnStdout: true, script: "set +x\n${Shell.quote(bin)} version 2>&1; echo \"exit=\$?\"\n")
        Map v = versionOutput(out)
        if (v.exit != 0) {
            steps.error("${step}: ${bin} (from ${source}) does not run: `slipway version` exited ${v.exit}: ${v.text}")
        }
        if (version != null && !v.text.startsWith("slipway ${version} ")) {
            steps.error("${step}: ${bin} (from ${source}) reports '${v.text}', expected slipway ${version}")
        }
        steps.echo("${step}: ${v.text} (${bin}, from ${source})")
        steps.env.SLIPWAY_BINARY = key
    }

    /** The agent's os-arch, asked once per node and build (remembered in env.SLIPWAY_PLATFORM_<node>). */
    String platform() {
        String memo = 'SLIPWAY_PLATFORM_' + ((String) (steps.env.NODE_NAME ?: 'unknown')).replaceAll('[^A-Za-z0-9_]', '_')
        String known = steps.env[memo]
        if (known) {
            return known
        }
        String out = steps.sh(label: 'slipway: agent platform', returnStdout: true, script: 'set +x\nuname -s; uname -m\n')
        Map p = platformOf(out)
        if (p.error) {
            steps.error("${step}: ${p.error}")
        }
        steps.env[memo] = p.platform
        return p.platform
    }

    String sha256(String path) {
        String out = steps.sh(label: 'slipway: sha256', returnStdout: true, script: 'set +x\n' +
                "f=${Shell.quote(path)}\n" +
                'if command -v sha256sum >/dev/null 2>&1; then sha256sum "$f"; else shasum -a 256 "$f"; fi | cut -d" " -f1\n')
        return out.trim()
    }

    /** "Linux\nx86_64" -> [platform: 'linux-amd64'], or [error: ...]. */
    @NonCPS
    static Map platformOf(String unameOutput) {
        String[] f = (unameOutput ?: '').trim().split('\\s+')
        if (f.length < 2) {
            return [error: "cannot tell the agent's platform from `uname -s; uname -m`: '${unameOutput}'".toString()]
        }
        Map oses = [Linux: 'linux', Darwin: 'darwin']
        Map arches = [x86_64: 'amd64', amd64: 'amd64', aarch64: 'arm64', arm64: 'arm64']
        String os = oses[f[0]]
        String arch = arches[f[1]]
        if (os == null) {
            return [error: "agents running ${f[0]} are not supported (Linux and macOS are)".toString()]
        }
        if (arch == null) {
            return [error: "no slipway binary is built for ${f[1]} (amd64 and arm64 are)".toString()]
        }
        return [platform: "${os}-${arch}".toString()]
    }

    /** The download URL: {version}, {os}, {arch}, {archive} replaced. */
    @NonCPS
    static String url(String template, String version, String platform, String archive) {
        String[] oa = platform.split('-')
        return template.replace('{version}', version).replace('{os}', oa[0]).replace('{arch}', oa[1]).replace('{archive}', archive)
    }

    @NonCPS
    static Map versionOutput(String out) {
        List<String> lines = (out ?: '').trim().readLines()
        int exit = 1
        if (lines && lines[-1].startsWith('exit=')) {
            exit = Integer.parseInt(lines[-1].substring(5).trim())
            lines = lines.subList(0, lines.size() - 1)
        }
        return [exit: exit, text: lines.join(' ').trim()]
    }

    @NonCPS
    static String stashName(String platform) {
        return "slipway-binary-${platform}".toString()
    }

    /** The stash name recorded in the variable ("<version> <name>") when it holds this version, else null. */
    @NonCPS
    static String stashOf(String recorded, String version) {
        String[] f = (recorded ?: '').split(' ')
        return f.length == 2 && f[0] == version ? f[1] : null
    }

    @NonCPS
    static String stashVariable(String platform) {
        return 'SLIPWAY_STASHED_' + platform.replace('-', '_').toUpperCase()
    }

    /**
     * The download script: curl into part; with netrcHost, the login comes from the bound
     * SLIPWAY_DOWNLOAD_USER/PASSWORD through a 0600 netrc file (printf is a shell builtin:
     * no process ever has the password in its argv), removed right after.
     */
    @NonCPS
    static String curlScript(String url, String part, String netrc, String netrcHost) {
        String curl = "curl -fsSL --connect-timeout 30 --max-time 600"
        List<String> lines = ['set +x']
        if (netrcHost != null) {
            lines.add("n=${Shell.quote(netrc)}")
            lines.add('(umask 077 && printf \'machine %s\\nlogin %s\\npassword %s\\n\' ' + Shell.quote(netrcHost) + ' ' +
                    Shell.env(DOWNLOAD_USER) + ' ' + Shell.env(DOWNLOAD_PASSWORD) + ' >"$n") || exit 1')
            curl += ' --netrc-file "$n"'
        }
        lines.add("${curl} -o ${Shell.quote(part)} ${Shell.quote(url)}")
        if (netrcHost != null) {
            lines.add('rc=$?; rm -f "$n"; exit "$rc"')
        }
        return lines.join('\n') + '\n'
    }

    /** The URL as printed: without user:password@ (a mirror's login must never reach the log). */
    @NonCPS
    static String redact(String url) {
        return (url ?: '').replaceAll('(?i)^([a-z][a-z0-9+.-]*://)[^/@?#]*@', '$1')
    }

    /** The host part of a URL, for the netrc's machine line. */
    @NonCPS
    static String host(String url) {
        String rest = redact(url).replaceFirst('(?i)^[a-z][a-z0-9+.-]*://', '')
        int end = rest.length()
        for (String c : ['/', '?', '#']) {
            int i = rest.indexOf(c)
            if (i >= 0 && i < end) {
                end = i
            }
        }
        String hostPort = rest.substring(0, end)
        if (hostPort.startsWith('[')) {
            int close = hostPort.indexOf(']')
            return close > 0 ? hostPort.substring(1, close) : hostPort
        }
        int colon = hostPort.lastIndexOf(':')
        return colon >= 0 ? hostPort.substring(0, colon) : hostPort
    }
}
