import org.junit.Test
import slipway.Spec

/** Every parameter of every step becomes the right flag of the binary (ARCHITECTURE.md's CLI contract). */
class FlagsTest {
    static final String BIN = '/ws/app@tmp/slipway/9.9.9/linux-amd64/slipway'
    static final Map REQUIRED = [deployCompose: [hosts: 'app1', dir: '/srv/app'], rollbackCompose: [hosts: 'app1', dir: '/srv/app']]

    // step -> list of [parameter, value, the words it must add]. Parameters that are no flag
    // (credentials bound into the environment, library options) add nothing: [].
    static final Map TABLE = [
            buildImages    : [
                    ['composeFiles', ['compose.yaml', 'ci overrides.yml'], ['-f', 'compose.yaml', '-f', 'ci overrides.yml']],
                    ['composeFiles', 'one.yml', ['-f', 'one.yml']],
                    ['projectName', 'shop', ['-p', 'shop']],
                    ['projectDirectory', 'app', ['--project-directory', 'app']],
                    ['envFiles', ['.env', 'ci.env'], ['--env-file', '.env', '--env-file', 'ci.env']],
                    ['profiles', 'debug', ['--profile', 'debug']],
                    ['registry', 'reg.example:5000/team', ['--registry', 'reg.example:5000/team']],
                    ['tags', ['{{.Commit}}', '{{.Branch}}-{{.BuildNumber}}'], ['--tag', '{{.Commit}}', '--tag', '{{.Branch}}-{{.BuildNumber}}']],
                    ['allowDirty', true, ['--allow-dirty']],
                    ['pull', true, ['--pull']],
                    ['parallel', 3, ['--parallel', '3']],
                    ['services', ['api', 'worker'], ['--service', 'api', '--service', 'worker']],
                    ['manifest', 'out/release.json', ['--manifest', 'out/release.json']],
                    ['builder', 'classic', ['--builder', 'classic']],
                    ['builder', 'tcp://buildkitd.internal:1234', ['--builder', 'tcp://buildkitd.internal:1234']],
                    ['labelRevision', true, ['--label-revision']],
                    ['registryCredentialsId', 'registry', []],
                    ['dockerConfigCredentialsId', 'docker-config', []],
                    ['tool', '/opt/slipway/bin/slipway', []],
            ],
            runTests       : [
                    ['composeFiles', 'docker-compose.ci.yml', ['-f', 'docker-compose.ci.yml']],
                    ['services', ['tests', 'e2e'], ['--service', 'tests', '--service', 'e2e']],
                    ['results', 'out/test-results', ['--results', 'out/test-results']],
                    ['resultsPaths', ['tests:/results', '/junit'], ['--results-path', 'tests:/results', '--results-path', '/junit']],
                    ['timeout', '20m', ['--timeout', '20m']],
                    ['timeout', 90, ['--timeout', '90s']],
                    ['manifest', 'out/release.json', ['--manifest', 'out/release.json']],
                    ['unstableOnFailure', true, []],
                    ['allowEmptyResults', true, []],
                    ['registryCredentialsId', 'registry', []],
                    ['dockerConfigCredentialsId', 'docker-config', []],
                    ['tool', '/opt/slipway/bin/slipway', []],
            ],
            pushImages     : [
                    ['manifest', 'out/release.json', ['--manifest', 'out/release.json']],
                    ['parallel', 8, ['--parallel', '8']],
                    ['pinned', 'deploy/pinned.yml', ['--pinned', 'deploy/pinned.yml']],
                    ['registryCredentialsId', 'registry', []],
                    ['dockerConfigCredentialsId', 'docker-config', []],
                    ['tool', '/opt/slipway/bin/slipway', []],
            ],
            deployCompose  : [
                    ['hosts', ['app1', 'deploy@app2:2222'], ['--host', 'app1', '--host', 'deploy@app2:2222']],
                    ['hostsFile', 'hosts.txt', ['--hosts-file', 'hosts.txt']],
                    ['dir', '/srv/shop', ['--dir', '/srv/shop']],
                    ['sshCredentialsId', 'deploy-ssh', ['--identity', '$SLIPWAY_SSH_KEY_FILE']],
                    ['identity', '/var/lib/jenkins/.ssh/deploy', ['--identity', '/var/lib/jenkins/.ssh/deploy']],
                    ['knownHostsCredentialsId', 'known-hosts', ['--known-hosts', '$SLIPWAY_KNOWN_HOSTS_FILE']],
                    ['knownHosts', '/etc/ssh/ssh_known_hosts', ['--known-hosts', '/etc/ssh/ssh_known_hosts']],
                    ['hostKey', 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s', ['--host-key', 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s']],
                    ['acceptNew', true, ['--accept-new']],
                    ['jump', 'ops@bastion:2222', ['--jump', 'ops@bastion:2222']],
                    ['strategy', 'rolling', ['--strategy', 'rolling']],
                    ['manifest', 'out/release.json', ['--manifest', 'out/release.json']],
                    ['envFileCredentialsId', 'app-env', ['--env-file', '$SLIPWAY_ENV_FILE']],
                    ['envFile', '.env.production', ['--env-file', '.env.production']],
                    ['parallel', 2, ['--parallel', '2']],
                    ['canary', true, ['--canary']],
                    ['onFailure', 'stop', ['--on-failure', 'stop']],
                    ['healthTimeout', '3m', ['--health-timeout', '3m']],
                    ['smokeUrl', 'http://127.0.0.1:8080/healthz', ['--smoke-url', 'http://127.0.0.1:8080/healthz']],
                    ['keep', 3, ['--keep', '3']],
                    ['lockWait', '5m', ['--lock-wait', '5m']],
                    ['lockTtl', '1h', ['--lock-ttl', '1h']],
                    ['preDeploy', 'web: python manage.py migrate', ['--pre-deploy', 'web: python manage.py migrate']],
                    ['preDeploy', ['db: true', 'web: migrate'], ['--pre-deploy', 'db: true', '--pre-deploy', 'web: migrate']],
                    ['renameProject', true, ['--rename-project']],
                    ['compose', 'library', ['--compose', 'library']],
                    ['dryRun', true, ['--dry-run']],
                    ['failOnError', true, []],
                    ['registryCredentialsId', 'registry', []],
                    ['dockerConfigCredentialsId', 'docker-config', []],
                    ['tool', '/opt/slipway/bin/slipway', []],
            ],
            rollbackCompose: [
                    ['hosts', ['app1', 'app2'], ['--host', 'app1', '--host', 'app2']],
                    ['hostsFile', 'hosts.txt', ['--hosts-file', 'hosts.txt']],
                    ['dir', '/srv/shop', ['--dir', '/srv/shop']],
                    ['sshCredentialsId', 'deploy-ssh', ['--identity', '$SLIPWAY_SSH_KEY_FILE']],
                    ['identity', '/keys/deploy', ['--identity', '/keys/deploy']],
                    ['knownHostsCredentialsId', 'known-hosts', ['--known-hosts', '$SLIPWAY_KNOWN_HOSTS_FILE']],
                    ['knownHosts', '/etc/ssh/ssh_known_hosts', ['--known-hosts', '/etc/ssh/ssh_known_hosts']],
                    ['hostKey', 'SHA256:abc', ['--host-key', 'SHA256:abc']],
                    ['acceptNew', true, ['--accept-new']],
                    ['jump', 'bastion', ['--jump', 'bastion']],
                    ['to', '0123456789ab', ['--to', '0123456789ab']],
                    ['parallel', 3, ['--parallel', '3']],
                    ['healthTimeout', '5m', ['--health-timeout', '5m']],
                    ['compose', 'cli', ['--compose', 'cli']],
                    ['smokeUrl', 'http://127.0.0.1:8080/healthz', ['--smoke-url', 'http://127.0.0.1:8080/healthz']],
                    ['lockWait', 60, ['--lock-wait', '60s']],
                    ['lockTtl', '2h', ['--lock-ttl', '2h']],
                    ['failOnError', true, []],
                    ['registryCredentialsId', 'registry', []],
                    ['dockerConfigCredentialsId', 'docker-config', []],
                    ['tool', '/opt/slipway/bin/slipway', []],
            ],
    ]

    static final Map BASELINE = [
            buildImages    : ['build', '--manifest', 'slipway-release.json'],
            runTests       : ['test', '--results', 'test-results', '--manifest', 'slipway-release.json'],
            pushImages     : ['push', '--manifest', 'slipway-release.json', '--pinned', 'slipway-compose.pinned.yml'],
            deployCompose  : ['deploy', '--host', 'app1', '--dir', '/srv/app', '--manifest', 'slipway-release.json', '--json'],
            rollbackCompose: ['rollback', '--host', 'app1', '--dir', '/srv/app', '--json'],
    ]

    @Test
    void theTableCoversEveryParameterOfEveryStep() {
        for (Map.Entry e : TABLE.entrySet()) {
            Set covered = e.value.collect { it[0] } as Set
            assert covered == Spec.params((String) e.key).keySet(): "${e.key}: parameters without a flag test"
        }
    }

    @Test
    void withoutParametersOnlyTheDefaultsThatPinPathsArePassed() {
        for (Map.Entry e : BASELINE.entrySet()) {
            List<String> argv = new Steps().argv((String) e.key, REQUIRED[e.key] ?: [:])
            assert argv[0] == BIN
            assert argv[1..-1] == e.value: "${e.key}"
        }
    }

    @Test
    void everyParameterMapsToItsFlag() {
        for (Map.Entry e : TABLE.entrySet()) {
            String step = e.key
            for (List row : (List<List>) e.value) {
                Map args = new LinkedHashMap(REQUIRED[step] ?: [:])
                if (row[0] == 'hostsFile') {
                    args.remove('hosts')
                }
                args[row[0]] = row[1]
                List<String> argv = new Steps().argv(step, args)
                List<String> expected = (List<String>) row[2]
                String where = "${step}(${row[0]}: ${row[1].inspect()}) -> ${argv}"
                if (row[0] == 'tool') {
                    assert argv[0] == row[1]: where
                    assert argv[1..-1] == BASELINE[step]: where
                } else if (expected.isEmpty()) {
                    assert argv[1..-1] == BASELINE[step]: where
                } else {
                    assert Collections.indexOfSubList(argv, expected) > 0: where
                    // Defaults that the parameter replaces are gone; nothing else changed.
                    List<String> rest = new ArrayList<String>(argv[1..-1])
                    rest.subList(Collections.indexOfSubList(rest, expected), Collections.indexOfSubList(rest, expected) + expected.size()).clear()
                    List<String> base = new ArrayList<String>(BASELINE[step])
                    if (row[0] in ['manifest', 'results', 'pinned', 'hosts', 'dir']) {
                        base.subList(base.indexOf(expected[0]), base.indexOf(expected[0]) + 2).clear()
                    } else if (row[0] == 'hostsFile') {
                        base.subList(base.indexOf('--host'), base.indexOf('--host') + 2).clear()
                    } else if (row[0] == 'sshCredentialsId') {
                        // hosts without user@ take the credential's username (see below)
                        base[base.indexOf('app1')] = '${SLIPWAY_SSH_USER:+$SLIPWAY_SSH_USER@}app1'
                    }
                    assert rest == base: where
                }
            }
        }
    }

    @Test
    void argvOrderFollowsTheContractAndValuesAreQuotedExactly() {
        Steps s = new Steps()
        s.run('deployCompose', [hosts         : ['app1.example', "o'brien@app2.example:2222"], dir: '/srv/my shop', strategy: 'rolling',
                                sshCredentialsId: 'deploy-ssh', knownHostsCredentialsId: 'known-hosts', envFileCredentialsId: 'app-env',
                                smokeUrl      : 'http://127.0.0.1:8080/healthz?probe=$x', preDeploy: 'web: ./manage.py migrate && echo "done"',
                                canary        : true, keep: 3, healthTimeout: '3m'])
        assert s.commandLine() == BIN + ' deploy' +
                ' --host "${SLIPWAY_SSH_USER:+$SLIPWAY_SSH_USER@}"app1.example' +
                " --host 'o'\\''brien@app2.example:2222'" +
                " --dir '/srv/my shop'" +
                ' --identity "$SLIPWAY_SSH_KEY_FILE"' +
                ' --known-hosts "$SLIPWAY_KNOWN_HOSTS_FILE"' +
                ' --strategy rolling --manifest slipway-release.json' +
                ' --env-file "$SLIPWAY_ENV_FILE"' +
                ' --canary --health-timeout 3m' +
                " --smoke-url 'http://127.0.0.1:8080/healthz?probe=\$x'" +
                ' --keep 3' +
                " --pre-deploy 'web: ./manage.py migrate && echo \"done\"'" +
                ' --json'
        // What the binary receives once sh has expanded it:
        Map env = [SLIPWAY_SSH_USER: Fixture.SSH_USER, SLIPWAY_SSH_KEY_FILE: '/k', SLIPWAY_KNOWN_HOSTS_FILE: '/kh', SLIPWAY_ENV_FILE: '/e']
        List<String> argv = Steps.expand(s.commandLine(), env)
        assert argv[2..5] == ['--host', "${Fixture.SSH_USER}@app1.example".toString(), '--host', "o'brien@app2.example:2222"]
        assert argv.contains('http://127.0.0.1:8080/healthz?probe=$x')
        assert argv.contains('web: ./manage.py migrate && echo "done"')
    }

    @Test
    void hostsWithoutUserGetTheCredentialsUsernameOnlyWhenItHasOne() {
        Steps s = new Steps()
        s.run('rollbackCompose', [hosts: ['app1', 'root@app2'], dir: 'app', sshCredentialsId: 'deploy-ssh'])
        assert Steps.expand(s.commandLine(), [SLIPWAY_SSH_USER: 'deploy'])[2..5] == ['--host', 'deploy@app1', '--host', 'root@app2']
        assert Steps.expand(s.commandLine(), [SLIPWAY_SSH_USER: ''])[2..5] == ['--host', 'app1', '--host', 'root@app2']
        // Without an SSH credential (sshagent, ~/.ssh/config) hosts pass as given.
        s = new Steps()
        s.run('rollbackCompose', [hosts: ['app1'], dir: 'app'])
        assert s.commandLine().endsWith(' rollback --host app1 --dir app --json')
    }

    @Test
    void theWholeScriptAroundTheBinary() {
        Steps s = new Steps()
        s.run('pushImages', [dockerConfigCredentialsId: 'docker-config', parallel: 2])
        String run = Fixture.field((String) s.agent.runs[-1].arg('script'), 'run')
        assert run ==~ /\/ws\/app@tmp\/slipway\/runs\/push-[0-9a-f]{8}/
        assert s.agent.runs[-1].arg('script') == '''\
set +x +e
run=''' + run + '''
rm -rf "$run" && mkdir -p "$run" || exit 1
DOCKER_CONFIG="$run/docker-config"; export DOCKER_CONFIG
mkdir -m 700 "$DOCKER_CONFIG" && ln -s "$SLIPWAY_DOCKER_CONFIG_FILE" "$DOCKER_CONFIG/config.json" || exit 1
SLIPWAY_LOG_FILE="$run/log"; SLIPWAY_EXIT_FILE="$run/exit"; SLIPWAY_CANCEL_GRACE="${SLIPWAY_CANCEL_GRACE:-4s}"
export SLIPWAY_LOG_FILE SLIPWAY_EXIT_FILE SLIPWAY_CANCEL_GRACE
printf '%s\\n' '+ /ws/app@tmp/slipway/9.9.9/linux-amd64/slipway push --manifest slipway-release.json --parallel 2 --pinned slipway-compose.pinned.yml'
{ /ws/app@tmp/slipway/9.9.9/linux-amd64/slipway push --manifest slipway-release.json --parallel 2 --pinned slipway-compose.pinned.yml >"$run/stdout"; echo "$?" >"$run/rc"; } 2>&1 | { trap \'\' TERM; exec tee "$run/stderr"; }
rc=$(cat "$run/rc" 2>/dev/null); [ -n "$rc" ] || rc=1
cat "$run/stdout"
''' + slipway.Cli.maskFunction(['SLIPWAY_DOCKER_CONFIG_FILE']) + '''
tail -n 40 "$run/stderr" 2>/dev/null | slipway_mask >"$run/stderr.tail"; rm -f "$run/stderr" "$run/rc"
rm -rf "$run/docker-config"
exit "$rc"
'''
        assert s.agent.runs[-1].arg('returnStatus') == true
        assert s.agent.runs[-1].arg('label') == 'slipway push'
    }

    @Test
    void eachRunGetsItsOwnDirectoryRemovedAfterUse() {
        Steps s = new Steps()
        s.run('buildImages', [:])
        s.run('runTests', [:])
        s.run('pushImages', [:])
        List<String> dirs = s.agent.runs.collect { Fixture.field((String) it.arg('script'), 'run') }
        assert dirs.size() == 3 && dirs.toSet().size() == 3
        ['build', 'test', 'push'].eachWithIndex { String cmd, int i -> assert dirs[i] ==~ "/ws/app@tmp/slipway/runs/${cmd}-[0-9a-f]{8}" }
        // The raw stdout/stderr copies are gone once each step has read them.
        assert !s.h.nodeFs().keySet().any { it.contains('/slipway/runs/') }
        assert dirs.every { d -> s.h.calls('sh').any { it.arg('label') == 'slipway: clean up' && it.arg('script').contains("rm -rf ${d}") } }
    }

    @Test
    void everyShellStepHasALabel() {
        Steps s = new Steps()
        s.run('buildImages', [:])
        s.run('pushImages', [:])
        s.run('deployCompose', [hosts: 'app1', dir: '/srv/app'])
        assert s.h.calls('sh').size() >= 8
        assert s.h.calls('sh').every { it.arg('label') ==~ /slipway.+/ }: s.h.calls('sh').findAll { !it.arg('label') }
    }
}
