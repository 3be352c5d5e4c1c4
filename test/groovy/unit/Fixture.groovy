import groovy.json.JsonOutput
import harness.Call
import harness.Harness
import harness.ShellWords

/**
 * A recording-mode harness with a simulated agent: `uname`, `curl`, `sha256sum`, `tar`,
 * `slipway version` and the binary's runs answer as a Linux amd64 agent would, against the
 * harness's in-memory file system. Tests change the knobs (curlFailures, archive, runStatus...).
 */
class Fixture {
    static final File REPO = new File(System.getenv('SLIPWAY_REPO') ?: '.').canonicalFile
    static final String VERSION = '9.9.9'
    static final String ARCHIVE_SHA = 'a' * 64
    static final String BINARY_SHA = 'b' * 64
    static final String COMMIT = '0123456789abcdef0123456789abcdef01234567'

    // Distinctive credential values: a test fails if any of them appears in a script.
    static final String REGISTRY_USER = 'reg-user-Q7v'
    static final String REGISTRY_PASSWORD = 'pw-$(id)-`id`-\'q\'-"dq"-Z9k'
    static final String SSH_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIAL-X4p\n-----END OPENSSH PRIVATE KEY-----\n'
    static final String SSH_PASSPHRASE = 'phrase-$HOME-W2m'
    static final String SSH_USER = 'deployer-J3n'
    static final String KNOWN_HOSTS = 'app1.example ssh-ed25519 AAAAKNOWNHOSTS-R8t\n'
    static final String ENV_FILE = 'DB_PASSWORD=envfile-secret-L5c\n'
    static final String DOCKER_CONFIG = '{"auths":{"reg.example":{"auth":"ZG9ja2VyY29uZmlnLXNlY3JldC1IMmI="}}}'
    static final List<String> SECRET_VALUES = [REGISTRY_USER, REGISTRY_PASSWORD, 'KEYMATERIAL-X4p', SSH_PASSPHRASE,
                                               'AAAAKNOWNHOSTS-R8t', 'envfile-secret-L5c', 'ZG9ja2VyY29uZmlnLXNlY3JldC1IMmI=']

    static String pinned(Map overrides = [:]) {
        Map p = [version  : VERSION,
                 url      : 'https://downloads.example/slipway/v{version}/{archive}',
                 platforms: ['linux-amd64' : [archive: "slipway_${VERSION}_linux_amd64.tar.gz".toString(), sha256: ARCHIVE_SHA, binarySha256: BINARY_SHA],
                             'darwin-arm64': [archive: "slipway_${VERSION}_darwin_arm64.tar.gz".toString(), sha256: 'd' * 64, binarySha256: 'e' * 64]]]
        p.putAll(overrides)
        return JsonOutput.toJson(p)
    }

    static Map manifest(Map services = [api: [image: 'reg.example/shop-api', tags: [COMMIT, 'latest'], imageId: 'sha256:' + '1' * 64]]) {
        return [schemaVersion: 1, project: 'shop', composeFiles: ['compose.yaml'], commit: COMMIT, shortCommit: COMMIT[0..11],
                branch       : 'main', dirty: false, buildUrl: 'https://ci.example/job/shop/7/', pinnedCompose: '', services: services]
    }

    static Harness recording() {
        Harness h = Harness.recording(REPO)
        h.resources['slipway/release.json'] = pinned()
        [BRANCH_NAME: 'main', BUILD_NUMBER: '7', BUILD_URL: 'https://ci.example/job/shop/7/', BUILD_TAG: 'jenkins-shop-7',
         JOB_NAME   : 'shop', GIT_COMMIT: COMMIT].each { k, v -> h.setGlobalEnv(k, v) }
        h.credential('registry', [type: 'usernamePassword', username: REGISTRY_USER, password: REGISTRY_PASSWORD])
        h.credential('deploy-ssh', [type: 'sshUserPrivateKey', username: SSH_USER, privateKey: SSH_KEY, passphrase: SSH_PASSPHRASE])
        h.credential('known-hosts', [type: 'file', fileName: 'known_hosts', content: KNOWN_HOSTS])
        h.credential('app-env', [type: 'file', fileName: 'app.env', content: ENV_FILE])
        h.credential('docker-config', [type: 'file', fileName: 'config.json', content: DOCKER_CONFIG])
        // The ids Jenkinsfile.example uses.
        h.credential('deploy-known-hosts', h.credentials['known-hosts'])
        h.credential('shop-env', h.credentials['app-env'])
        return h
    }

    /** The run script's binary command line as words ("$VAR" kept unexpanded). */
    static List<String> argv(String script) {
        String line = script.readLines().find { it.startsWith('{ ') && it.contains('>"$run/stdout"') }
        assert line != null: "no slipway command line in script:\n${script}"
        String cmd = line.substring(2, line.indexOf(' >"$run/stdout"'))
        return ShellWords.split(cmd)
    }

    /** The value of a `name=...` line of a script, unquoted. */
    static String field(String script, String name) {
        String line = script.readLines().find { it.startsWith(name + '=') }
        return line == null ? null : ShellWords.split(line.substring(name.length() + 1))[0]
    }
}

/** The simulated agent behind Fixture.recording(). */
class FakeAgent {
    final Harness h
    String uname = 'Linux\nx86_64\n'
    String archive = 'ARCHIVE'          // what curl downloads; sha256 ARCHIVE_SHA only when 'ARCHIVE'
    String binary = 'BINARY'            // what tar extracts; sha256 BINARY_SHA only when 'BINARY'
    int curlFailures = 0                // attempts that fail before curl succeeds
    String version = "slipway ${Fixture.VERSION} 1a2b3c4 linux/amd64"
    int versionExit = 0
    int runStatus = 0
    String runStderr = ''
    String runStdout = ''
    Closure onRun = null                // (Call) -> side effects of a run, e.g. writing the manifest
    int curlCalls = 0
    int stages = 0                      // staging dirs made (mktemp -d)
    int installs = 0                    // binaries moved into place
    int versionCalls = 0
    List<Call> runs = []

    FakeAgent(Harness h) {
        this.h = h
        h.onSh('uname -s') { uname }
        h.onSh('curl -fsSL') { Call c ->
            curlCalls++
            if (curlCalls <= curlFailures) {
                return 22
            }
            List<String> w = ShellWords.split(((String) c.arg('script')).readLines().find { it.contains('curl') })
            h.seed(w[w.indexOf('-o') + 1], archive)
            return 0
        }
        h.onSh('sha256sum') { Call c ->
            String content = h.nodeFs()[Fixture.field((String) c.arg('script'), 'f')]
            return content == 'ARCHIVE' ? Fixture.ARCHIVE_SHA + '\n' : content == 'BINARY' ? Fixture.BINARY_SHA + '\n' : 'f' * 64 + '\n'
        }
        h.onSh('tar -xzf') { Call c ->
            List<String> w = ShellWords.split(((String) c.arg('script')).readLines().find { it.startsWith('tar -xzf') })
            h.seed(w[w.indexOf('-C') + 1] + '/slipway', binary)
            return 0
        }
        h.onSh(~/(?m)^rm -rf /) { Call c ->
            ShellWords.split(((String) c.arg('script')).readLines().find { it.startsWith('rm -rf ') }).drop(2).each { String d ->
                h.nodeFs().keySet().removeAll(h.nodeFs().keySet().findAll { it == d || it.startsWith(d + '/') })
            }
            return 0
        }
        h.onSh('mktemp -d ') { Call c ->
            List<String> w = ShellWords.split(((String) c.arg('script')).readLines().find { it.startsWith('mktemp -d ') })
            stages++
            return w[2].replace('XXXXXX', String.format('%06d', stages)) + '\n'
        }
        h.onSh(~/(?m)^chmod 755 /) { Call c ->
            List<String> lines = ((String) c.arg('script')).readLines()
            List<String> mv = ShellWords.split(lines.find { it.startsWith('mv -f ') })
            h.nodeFs()[mv[3]] = h.nodeFs().remove(mv[2])
            String stage = ShellWords.split(lines.find { it.startsWith('rm -rf ') })[2]
            h.nodeFs().keySet().removeAll(h.nodeFs().keySet().findAll { it.startsWith(stage + '/') })
            installs++
            return 0
        }
        h.onSh(' version 2>&1') { Call c ->
            versionCalls++
            return "${version}\nexit=${versionExit}\n".toString()
        }
        h.onSh('>"$run/stdout"') { Call c ->
            runs.add(c)
            String run = Fixture.field((String) c.arg('script'), 'run')
            h.seed(run + '/stdout', runStdout)
            if (onRun != null) {
                onRun.call(c) // may change runStatus and runStderr for this run
            }
            h.seed(run + '/stderr.tail', runStderr)
            return runStatus
        }
    }

    /** The argv of the last run of the binary. */
    List<String> lastArgv() {
        return Fixture.argv((String) runs[-1].arg('script'))
    }
}
