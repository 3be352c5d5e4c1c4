import harness.Call
import harness.Harness
import harness.PipelineError
import org.junit.Test

/** Credentials are bound by id into environment variables; no value ever passes through Groovy into a script. */
class CredentialsTest {
    static final Map ALL_DEPLOY = [hosts                  : ['app1', 'app2'], dir: '/srv/shop', registryCredentialsId: 'registry',
                                   sshCredentialsId       : 'deploy-ssh', knownHostsCredentialsId: 'known-hosts',
                                   envFileCredentialsId   : 'app-env']

    @Test
    void deployBindsEveryCredentialIntoTheVariablesTheBinaryReads() {
        Steps s = new Steps()
        Map seen = [:]
        Closure write = s.agent.onRun
        s.agent.onRun = { Call c ->
            write(c)
            // While the binary runs, the files exist and hold the credentials.
            seen.key = s.h.nodeFs()[c.env.SLIPWAY_SSH_KEY_FILE]
            seen.knownHosts = s.h.nodeFs()[c.env.SLIPWAY_KNOWN_HOSTS_FILE]
            seen.envFile = s.h.nodeFs()[c.env.SLIPWAY_ENV_FILE]
        }
        s.run('deployCompose', ALL_DEPLOY)

        List<Call> wc = s.h.calls('withCredentials')
        assert wc.size() == 1
        assert wc[0].args == [[
                [$class: 'usernamePassword', credentialsId: 'registry', usernameVariable: 'SLIPWAY_REGISTRY_USER', passwordVariable: 'SLIPWAY_REGISTRY_PASSWORD'],
                [$class: 'sshUserPrivateKey', credentialsId: 'deploy-ssh', keyFileVariable: 'SLIPWAY_SSH_KEY_FILE', passphraseVariable: 'SLIPWAY_SSH_PASSPHRASE', usernameVariable: 'SLIPWAY_SSH_USER'],
                [$class: 'file', credentialsId: 'known-hosts', variable: 'SLIPWAY_KNOWN_HOSTS_FILE'],
                [$class: 'file', credentialsId: 'app-env', variable: 'SLIPWAY_ENV_FILE'],
        ]]
        Map env = s.agent.runs[-1].env
        assert env.SLIPWAY_REGISTRY_USER == Fixture.REGISTRY_USER
        assert env.SLIPWAY_REGISTRY_PASSWORD == Fixture.REGISTRY_PASSWORD
        assert env.SLIPWAY_SSH_PASSPHRASE == Fixture.SSH_PASSPHRASE
        assert env.SLIPWAY_SSH_USER == Fixture.SSH_USER
        assert seen == [key: Fixture.SSH_KEY, knownHosts: Fixture.KNOWN_HOSTS, envFile: Fixture.ENV_FILE]
        // ...and are gone afterwards.
        assert !s.h.nodeFs().keySet().any { it.contains('secretFiles') }
        // Only the run of the binary sees them: obtaining the binary happens outside.
        for (Call c : s.h.calls('sh')) {
            if (!s.agent.runs.contains(c)) {
                assert !c.env.keySet().any { it.startsWith('SLIPWAY_REGISTRY') || it.startsWith('SLIPWAY_SSH') }: c.arg('script')
            }
        }
        // The file credentials reach the binary as flags naming the variables.
        List<String> argv = s.agent.lastArgv()
        assert argv.containsAll(['$SLIPWAY_SSH_KEY_FILE', '$SLIPWAY_KNOWN_HOSTS_FILE', '$SLIPWAY_ENV_FILE'])
    }

    @Test
    void registryCredentialsForBuildTestPushAndRollback() {
        for (String step : ['buildImages', 'runTests', 'pushImages', 'rollbackCompose']) {
            Steps s = new Steps()
            Map args = step == 'rollbackCompose' ? [hosts: 'app1', dir: '/srv/app', registryCredentialsId: 'registry'] : [registryCredentialsId: 'registry']
            s.run(step, args)
            assert s.h.calls('withCredentials')[0].args == [[[$class          : 'usernamePassword', credentialsId: 'registry',
                                                               usernameVariable: 'SLIPWAY_REGISTRY_USER', passwordVariable: 'SLIPWAY_REGISTRY_PASSWORD']]]
            assert s.agent.runs[-1].env.SLIPWAY_REGISTRY_PASSWORD == Fixture.REGISTRY_PASSWORD
        }
    }

    @Test
    void dockerConfigFileBecomesADockerConfigDirectoryInTheShell() {
        Steps s = new Steps()
        s.run('pushImages', [dockerConfigCredentialsId: 'docker-config'])
        assert s.h.calls('withCredentials')[0].args == [[[$class: 'file', credentialsId: 'docker-config', variable: 'SLIPWAY_DOCKER_CONFIG_FILE']]]
        String script = s.agent.runs[-1].arg('script')
        assert script.contains('DOCKER_CONFIG="$run/docker-config"; export DOCKER_CONFIG')
        assert script.contains('ln -s "$SLIPWAY_DOCKER_CONFIG_FILE" "$DOCKER_CONFIG/config.json"')
        assert script.contains('rm -rf "$run/docker-config"')
        assert !s.agent.runs[-1].env.containsKey('DOCKER_CONFIG')
    }

    @Test
    void noCredentialsNoBinding() {
        Steps s = new Steps()
        s.run('buildImages', [:])
        assert s.h.calls('withCredentials').isEmpty()
        assert !s.agent.runs[-1].arg('script').contains('DOCKER_CONFIG')
    }

    @Test
    void anEnclosingSshagentIsUsedAsIs() {
        Steps s = new Steps()
        s.h.run('''
            sshagent(['deploy-ssh']) {
                deployCompose(hosts: 'deploy@app1', dir: '/srv/shop')
            }
        ''')
        assert s.h.build.result == 'SUCCESS'
        assert s.agent.runs[-1].env.SSH_AUTH_SOCK
        assert s.h.calls('withCredentials').isEmpty()
        assert !s.agent.lastArgv().contains('--identity')
    }

    @Test
    void missingAndMistypedCredentialsStopTheBuild() {
        Steps s = new Steps()
        try {
            s.run('pushImages', [registryCredentialsId: 'nope'])
            assert false
        } catch (PipelineError e) {
            assert e.message == "Could not find credentials entry with ID 'nope'"
        }
        try {
            new Steps().run('pushImages', [registryCredentialsId: 'app-env'])
            assert false
        } catch (PipelineError e) {
            assert e.message == "Credentials 'app-env' is of type 'file' where 'usernamePassword' was expected"
        }
    }

    /** Every script, message and argument a run recorded, except the environment withCredentials set. */
    static List<String> everythingGroovyBuilt(Harness h) {
        return h.calls.collect { Call c -> "${c.name}: ${c.args} ${c.extra.findAll { k, v -> k != 'stdout' }}".toString() }
    }

    static List<String> leaks(Harness h) {
        List<String> found = []
        for (String text : everythingGroovyBuilt(h)) {
            for (String secret : Fixture.SECRET_VALUES) {
                if (text.contains(secret)) {
                    found.add("${secret} in ${text}".toString())
                }
            }
        }
        return found
    }

    @Test
    void noCredentialValueEverAppearsInAScriptOrAnyStepArgument() {
        Steps s = new Steps()
        s.agent.runStderr = 'slipway: error: nothing secret here\n'
        s.run('buildImages', [registryCredentialsId: 'registry', pull: true])
        s.run('runTests', [dockerConfigCredentialsId: 'docker-config'])
        s.run('pushImages', [registryCredentialsId: 'registry'])
        s.run('deployCompose', ALL_DEPLOY)
        s.run('deployCompose', [hosts: 'app1', dir: '/srv/app', dockerConfigCredentialsId: 'docker-config', sshCredentialsId: 'deploy-ssh'])
        s.run('rollbackCompose', [hosts: 'app1', dir: '/srv/app', sshCredentialsId: 'deploy-ssh', knownHostsCredentialsId: 'known-hosts', registryCredentialsId: 'registry'])
        assert s.h.calls('sh').size() > 10
        assert s.h.calls('withCredentials').size() == 6
        assert leaks(s.h) == []
        // The secrets were really in play: the binary's environment held every one.
        String envs = s.agent.runs.collect { it.env.toString() }.join('\n')
        assert Fixture.SECRET_VALUES.findAll { !envs.contains(it) && !it.contains('KEYMATERIAL') && !it.contains('KNOWNHOSTS') && !it.contains('envfile') && !it.contains('ZG9j') } == []
    }

    @Test
    void theLeakDetectorCatchesGroovyInterpolation() {
        // The mistake the test above guards against: a GString expands the secret in Groovy.
        Steps s = new Steps()
        s.h.run('''
            withCredentials([usernamePassword(credentialsId: 'registry', usernameVariable: 'U', passwordVariable: 'P')]) {
                sh "docker login -u $U -p ${env.P} reg.example"
            }
        ''')
        assert leaks(s.h).size() == 2
    }
}
