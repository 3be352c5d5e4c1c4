package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * Obtains the slipway binary for the agent a step runs on, in this order:
 *   1. an explicit path: the step's `tool:` parameter, else the SLIPWAY_BIN environment variable;
 *   2. a verified cached copy in pwd(tmp: true) (sha256 equal to the pinned one);
 *   3. this build's stash, when an earlier step downloaded it on another node;
 *   4. a download of the version pinned in resources/slipway/release.json, retried, whose
 *      sha256 must match the pinned one (a mismatch stops the build).
 * Then `slipway version` runs once per build and node (remembered in env.SLIPWAY_BINARY).
 */
class Binary implements Serializable {
    private static final long serialVersionUID = 1L

    static final String PINNED = 'slipway/release.json'
    static final int ATTEMPTS = 3

    // Not private: closures under CPS cannot always reach private members of their class.
    final def steps
    final String step

    Binary(def steps, String step) {
        this.steps = steps
        this.step = step
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
        String tmp = steps.pwd(tmp: true)
        String dir = "${tmp}/slipway/${version}/${platform}"
        String bin = "${dir}/slipway"

        if (steps.fileExists(bin)) {
            String got = sha256(bin)
            if (got == want.binarySha256) {
                versionOnce(bin, version, 'the cached copy')
                return bin
            }
            steps.echo("${step}: the cached ${bin} has sha256 ${got}, not the pinned ${want.binarySha256}; fetching it again")
        }

        String stashVar = stashVariable(platform)
        if (steps.env[stashVar] == version) {
            steps.sh("set +x\nmkdir -p ${Shell.quote(dir)}\n")
            steps.dir(dir) {
                steps.unstash(stashName(platform))
            }
            String got = sha256(bin)
            if (got != want.binarySha256) {
                steps.error("${step}: checksum mismatch for the stashed slipway binary: expected sha256 ${want.binarySha256}, got ${got}; refusing to run it")
            }
            steps.sh("set +x\nchmod 755 ${Shell.quote(bin)}\n")
            versionOnce(bin, version, 'this build\'s stash')
            return bin
        }

        download(pinned, platform, want, dir, bin)
        versionOnce(bin, version, 'the download')
        steps.dir(dir) {
            steps.stash(name: stashName(platform), includes: 'slipway')
        }
        steps.env[stashVar] = version
        return bin
    }

    void download(Map pinned, String platform, Map want, String dir, String bin) {
        String url = url((String) (steps.env.SLIPWAY_DOWNLOAD_URL ?: pinned.url), (String) pinned.version, platform, (String) want.archive)
        String part = "${dir}/${want.archive}.part"
        int attempt = 0
        boolean ok = false
        while (!ok && attempt < ATTEMPTS) {
            attempt++
            int rc = steps.sh(returnStatus: true, script: 'set +x\n' +
                    "mkdir -p ${Shell.quote(dir)} && curl -fsSL --connect-timeout 30 --max-time 600 -o ${Shell.quote(part)} ${Shell.quote(url)}\n")
            if (rc == 0) {
                ok = true
            } else {
                steps.echo("${step}: downloading ${url} failed (curl exit ${rc}, attempt ${attempt} of ${ATTEMPTS})")
                if (attempt < ATTEMPTS) {
                    steps.sleep(time: 5 * attempt, unit: 'SECONDS')
                }
            }
        }
        if (!ok) {
            steps.error("${step}: could not download slipway ${pinned.version} from ${url} after ${ATTEMPTS} attempts; " +
                    'check the agent\'s network and proxy settings, or point SLIPWAY_DOWNLOAD_URL at a mirror (the pinned sha256 is still checked)')
        }
        String got = sha256(part)
        if (got != want.sha256) {
            steps.sh("set +x\nrm -f ${Shell.quote(part)}\n")
            steps.error("${step}: checksum mismatch for ${url}: expected sha256 ${want.sha256}, got ${got}; " +
                    'refusing to run it (a corrupt download, or not the release this library version pins)')
        }
        String fresh = "${bin}.new"
        steps.sh('set +x -e\n' +
                "d=${Shell.quote(dir)}\n" +
                'rm -rf "$d/x" && mkdir "$d/x"\n' +
                "tar -xzf ${Shell.quote(part)} -C \"\$d/x\" slipway\n" +
                "mv -f \"\$d/x/slipway\" ${Shell.quote(fresh)} && rm -rf \"\$d/x\"\n")
        got = sha256(fresh)
        if (got != want.binarySha256) {
            steps.sh("set +x\nrm -f ${Shell.quote(fresh)} ${Shell.quote(part)}\n")
            steps.error("${step}: checksum mismatch for the slipway binary in ${want.archive}: expected sha256 ${want.binarySha256}, got ${got}; refusing to run it")
        }
        steps.sh("set +x\nchmod 755 ${Shell.quote(fresh)} && mv -f ${Shell.quote(fresh)} ${Shell.quote(bin)} && rm -f ${Shell.quote(part)}\n")
    }

    /** Runs `slipway version` the first time this build uses bin on this node. */
    void versionOnce(String bin, String version, String source) {
        String key = "${steps.env.NODE_NAME ?: ''}:${bin}"
        if (steps.env.SLIPWAY_BINARY == key) {
            return
        }
        String out = steps.sh(returnStdout: true, script: "set +x\n${Shell.quote(bin)} version 2>&1; echo \"exit=\$?\"\n")
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
        String out = steps.sh(returnStdout: true, script: 'set +x\nuname -s; uname -m\n')
        Map p = platformOf(out)
        if (p.error) {
            steps.error("${step}: ${p.error}")
        }
        steps.env[memo] = p.platform
        return p.platform
    }

    String sha256(String path) {
        String out = steps.sh(returnStdout: true, script: 'set +x\n' +
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

    @NonCPS
    static String stashVariable(String platform) {
        return 'SLIPWAY_STASHED_' + platform.replace('-', '_').toUpperCase()
    }
}
