package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * What each step accepts and the flag of the binary each parameter becomes (the CLI contract
 * in ARCHITECTURE.md, one to one). Entries are in argv order. A step's defaults live in its
 * own vars/<step>.groovy; Params.check() insists that both name the same parameters.
 *
 *   type      string | list (a String or a List of them; the flag repeats) | boolean |
 *             integer | duration (Go duration like '90s', '2m'; an Integer means seconds) |
 *             enum | credentialsId
 *   flag      the flag, or null for parameters the library itself uses
 *   secretVar for a credentialsId with a flag: the variable withCredentials binds, passed
 *             as "$VAR" (the value only ever lives in the environment)
 */
class Spec implements Serializable {
    private static final long serialVersionUID = 1L

    static final String STRING = 'string'
    static final String LIST = 'list'
    static final String BOOLEAN = 'boolean'
    static final String INTEGER = 'integer'
    static final String DURATION = 'duration'
    static final String ENUM = 'enum'
    static final String CREDENTIALS = 'credentialsId'

    // Environment variables the credentials are bound to. SLIPWAY_REGISTRY_* and
    // SLIPWAY_SSH_PASSPHRASE are read by the binary itself; the others are files whose
    // paths are passed as flags or turned into DOCKER_CONFIG by the script.
    static final String REGISTRY_USER = 'SLIPWAY_REGISTRY_USER'
    static final String REGISTRY_PASSWORD = 'SLIPWAY_REGISTRY_PASSWORD'
    static final String DOCKER_CONFIG_FILE = 'SLIPWAY_DOCKER_CONFIG_FILE'
    static final String SSH_KEY_FILE = 'SLIPWAY_SSH_KEY_FILE'
    static final String SSH_PASSPHRASE = 'SLIPWAY_SSH_PASSPHRASE'
    static final String SSH_USER = 'SLIPWAY_SSH_USER'
    static final String KNOWN_HOSTS_FILE = 'SLIPWAY_KNOWN_HOSTS_FILE'
    static final String ENV_FILE = 'SLIPWAY_ENV_FILE'

    @NonCPS
    private static Map p(String type, String flag, Map extra = [:]) {
        Map m = [type: type, flag: flag]
        m.putAll(extra)
        return m
    }

    @NonCPS
    private static Map load() {
        return [
                composeFiles    : p(LIST, '-f'),
                projectName     : p(STRING, '-p'),
                projectDirectory: p(STRING, '--project-directory'),
                envFiles        : p(LIST, '--env-file'),
                profiles        : p(LIST, '--profile'),
        ]
    }

    @NonCPS
    private static Map tagging() {
        return [
                registry  : p(STRING, '--registry'),
                tags      : p(LIST, '--tag'),
                allowDirty: p(BOOLEAN, '--allow-dirty'),
        ]
    }

    @NonCPS
    private static Map registryCredentials() {
        return [
                registryCredentialsId    : p(CREDENTIALS, null, [binding: 'usernamePassword', exclusive: 'dockerConfigCredentialsId']),
                dockerConfigCredentialsId: p(CREDENTIALS, null, [binding: 'dockerConfig']),
        ]
    }

    @NonCPS
    private static Map target() {
        return [
                hosts                  : p(LIST, '--host', [hostUser: true]),
                hostsFile              : p(STRING, '--hosts-file'),
                dir                    : p(STRING, '--dir'),
                sshCredentialsId       : p(CREDENTIALS, '--identity', [binding: 'sshUserPrivateKey', secretVar: SSH_KEY_FILE, exclusive: 'identity']),
                identity               : p(STRING, '--identity'),
                knownHostsCredentialsId: p(CREDENTIALS, '--known-hosts', [binding: 'file', secretVar: KNOWN_HOSTS_FILE, exclusive: 'knownHosts']),
                knownHosts             : p(STRING, '--known-hosts'),
                hostKey                : p(STRING, '--host-key'),
                acceptNew              : p(BOOLEAN, '--accept-new'),
                jump                   : p(STRING, '--jump'),
        ]
    }

    @NonCPS
    private static Map tool() {
        return [tool: p(STRING, null)]
    }

    /** Whether a parameter names the servers (hosts, dir, SSH): what repair and status need. */
    @NonCPS
    static boolean isTarget(String name) {
        return target().containsKey(name)
    }

    /** The binary's command each step runs. */
    @NonCPS
    static String command(String step) {
        Map m = [buildImages: 'build', runTests: 'test', pushImages: 'push', deployCompose: 'deploy', rollbackCompose: 'rollback']
        if (!m.containsKey(step)) {
            throw new IllegalArgumentException("no such slipway step: ${step}")
        }
        return m[step]
    }

    /** Steps whose command is run with --json, its stdout parsed into the step's result. */
    @NonCPS
    static boolean json(String step) {
        return step == 'deployCompose' || step == 'rollbackCompose'
    }

    /** Parameters of a step, in argv order. */
    @NonCPS
    static Map params(String step) {
        Map m = new LinkedHashMap()
        switch (step) {
            case 'buildImages':
                m.putAll(load())
                m.putAll(tagging())
                m.pull = p(BOOLEAN, '--pull')
                m.parallel = p(INTEGER, '--parallel', [min: 1])
                m.services = p(LIST, '--service')
                m.manifest = p(STRING, '--manifest', [nonEmpty: true])
                m.builder = p(STRING, '--builder', [nonEmpty: true])
                m.labelRevision = p(BOOLEAN, '--label-revision')
                m.putAll(registryCredentials())
                m.putAll(tool())
                break
            case 'runTests':
                m.composeFiles = p(LIST, '-f')
                m.services = p(LIST, '--service')
                m.results = p(STRING, '--results', [nonEmpty: true])
                m.resultsPaths = p(LIST, '--results-path')
                m.timeout = p(DURATION, '--timeout')
                m.manifest = p(STRING, '--manifest', [nonEmpty: true])
                m.unstableOnFailure = p(BOOLEAN, null)
                m.allowEmptyResults = p(BOOLEAN, null)
                m.putAll(registryCredentials())
                m.putAll(tool())
                break
            case 'pushImages':
                m.manifest = p(STRING, '--manifest', [nonEmpty: true])
                m.parallel = p(INTEGER, '--parallel', [min: 1])
                m.pinned = p(STRING, '--pinned', [nonEmpty: true])
                m.putAll(registryCredentials())
                m.putAll(tool())
                break
            case 'deployCompose':
                m.putAll(target())
                m.strategy = p(ENUM, '--strategy', [values: ['recreate', 'rolling', 'swarm']])
                m.manifest = p(STRING, '--manifest', [nonEmpty: true])
                m.envFileCredentialsId = p(CREDENTIALS, '--env-file', [binding: 'file', secretVar: ENV_FILE, exclusive: 'envFile'])
                m.envFile = p(STRING, '--env-file')
                m.parallel = p(INTEGER, '--parallel', [min: 1])
                m.canary = p(BOOLEAN, '--canary')
                m.onFailure = p(ENUM, '--on-failure', [values: ['rollback', 'stop']])
                m.healthTimeout = p(DURATION, '--health-timeout')
                m.smokeUrl = p(STRING, '--smoke-url')
                m.keep = p(INTEGER, '--keep', [min: 1])
                m.lockWait = p(DURATION, '--lock-wait')
                m.lockTtl = p(DURATION, '--lock-ttl')
                m.preDeploy = p(LIST, '--pre-deploy')
                m.renameProject = p(BOOLEAN, '--rename-project')
                m.compose = p(ENUM, '--compose', [values: ['auto', 'library', 'cli']])
                m.dryRun = p(BOOLEAN, '--dry-run')
                m.failOnError = p(BOOLEAN, null)
                m.putAll(registryCredentials())
                m.putAll(tool())
                break
            case 'rollbackCompose':
                m.putAll(target())
                m.to = p(STRING, '--to')
                m.parallel = p(INTEGER, '--parallel', [min: 1])
                m.healthTimeout = p(DURATION, '--health-timeout')
                m.smokeUrl = p(STRING, '--smoke-url')
                m.lockWait = p(DURATION, '--lock-wait')
                m.lockTtl = p(DURATION, '--lock-ttl')
                m.compose = p(ENUM, '--compose', [values: ['auto', 'library', 'cli']])
                m.failOnError = p(BOOLEAN, null)
                m.putAll(registryCredentials())
                m.putAll(tool())
                break
            default:
                throw new IllegalArgumentException("no such slipway step: ${step}")
        }
        return m
    }

    /** Required parameters: groups of which at least one must be given. */
    @NonCPS
    static List oneOf(String step) {
        if (step == 'deployCompose' || step == 'rollbackCompose') {
            return [['hosts', 'hostsFile'], ['dir']]
        }
        return []
    }

    /** What an exit code of the binary means (ARCHITECTURE.md, exit codes). */
    @NonCPS
    static String exitMeaning(int code) {
        switch (code) {
            case 0: return 'done'
            case 1: return 'failed before changing anything'
            case 2: return 'bad usage or bad input'
            case 3: return 'tests failed or timed out'
            case 4: return 'deploy failed and every changed host is back on its previous release'
            case 5: return 'deploy failed and hosts are left changed'
            case 126: return 'the binary could not be executed'
            case 127: return 'the binary was not found'
            case 130: return 'cancelled'
            default: return 'failed'
        }
    }
}
