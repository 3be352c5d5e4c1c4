import harness.Call
import harness.Harness
import org.junit.Test

/** Jenkinsfile.example through the declarative interpreter, recording what it calls. */
class ExampleTest {
    static final String EXAMPLE = new File(Fixture.REPO, 'Jenkinsfile.example').text

    static Steps run(String branch, Closure setup = null) {
        Steps s = new Steps()
        s.h.setGlobalEnv('BRANCH_NAME', branch)
        if (setup != null) {
            setup.call(s)
        }
        s.h.run(EXAMPLE)
        return s
    }

    static List<String> libraryCalls(Harness h) {
        return h.calls.findAll { it.name in ['buildImages', 'runTests', 'pushImages', 'deployCompose', 'lock', 'archiveArtifacts', 'junit'] }*.name
    }

    @Test
    void mainIsBuiltTestedPushedAndDeployedInsideTheLock() {
        Steps s = run('main')
        assert s.h.build.result == 'SUCCESS': s.h.logText
        assert s.h.libraryRefs == ['slipway@v0.1.0']
        assert libraryCalls(s.h) == ['buildImages', 'runTests', 'junit', 'archiveArtifacts', 'pushImages', 'archiveArtifacts',
                                     'lock', 'deployCompose', 'archiveArtifacts', 'archiveArtifacts']
        assert s.h.build.stages*.status == ['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']
        Map pipeline = (Map) s.h.calls('pipeline')[0].args
        assert pipeline.options*.name == ['disableConcurrentBuilds', 'timeout', 'buildDiscarder']
        assert s.h.calls('lock')[0].args == [resource: 'deploy-shop']
        Call deploy = s.h.calls('deployCompose')[0]
        assert deploy.args.hosts == ['deploy@app1.example.com', 'deploy@app2.example.com']
        assert deploy.args.strategy == 'recreate'
        // The deploy happens inside the lock.
        assert s.h.calls.indexOf(deploy) > s.h.calls.indexOf(s.h.calls('lock')[0])
        assert s.agent.lastArgv()[1..-1] == ['deploy', '--host', 'deploy@app1.example.com', '--host', 'deploy@app2.example.com', '--dir', '/srv/shop',
                                            '--identity', '$SLIPWAY_SSH_KEY_FILE', '--known-hosts', '$SLIPWAY_KNOWN_HOSTS_FILE', '--strategy', 'recreate',
                                            '--manifest', 'slipway-release.json', '--env-file', '$SLIPWAY_ENV_FILE', '--smoke-url', 'http://127.0.0.1:8080/healthz', '--json']
        assert s.agent.curlCalls == 1
        assert s.h.logText.contains("Pushed [api:sha256:${'d' * 64}]")
    }

    @Test
    void otherBranchesAreBuiltAndTestedOnly() {
        Steps s = run('feature/login')
        assert s.h.build.result == 'SUCCESS'
        assert libraryCalls(s.h) == ['buildImages', 'runTests', 'junit', 'archiveArtifacts', 'archiveArtifacts']
        assert s.h.build.stages*.status == ['SUCCESS', 'SUCCESS', 'SKIPPED', 'SKIPPED']
    }

    @Test
    void failingTestsArePublishedAndNothingIsPushedOrDeployed() {
        Steps s = run('main') { Steps st -> StepsTest.failingTests(st) }
        assert s.h.build.result == 'FAILURE': s.h.logText
        assert s.h.build.stages*.status == ['SUCCESS', 'FAILURE', 'SKIPPED', 'SKIPPED']
        assert s.h.build.stages*.name == ['Build', 'Test', 'Push', 'Deploy']
        assert s.h.calls('junit')[0]?.extra?.summary?.failCount == 1: s.h.logText
        assert s.h.calls('pushImages').isEmpty()
        assert s.h.calls('deployCompose').isEmpty()
        // Nothing was deployed: the post section claims nothing about the servers.
        assert !s.h.logText.contains('back on its previous release') && !s.h.logText.contains('LEFT CHANGED')
        // post { always } ran
        assert s.h.calls('archiveArtifacts')[-1].args.artifacts == 'slipway-release.json'
    }

    @Test
    void jobParametersReachTheSteps() {
        Steps s = run('main') { Steps st ->
            st.h.params.DEPLOY_HOSTS = 'web1 web2:2222'
            st.h.params.STRATEGY = 'rolling'
        }
        assert s.h.build.result == 'SUCCESS'
        assert s.h.calls('deployCompose')[0].args.hosts == ['web1', 'web2:2222']
        List<String> argv = s.agent.lastArgv()
        assert argv[argv.indexOf('--strategy') + 1] == 'rolling'
        // hosts without user@ take the deploy credential's username
        assert s.agent.runs[-1].arg('script').contains('--host "${SLIPWAY_SSH_USER:+$SLIPWAY_SSH_USER@}"web1')
    }

    @Test
    void aRolledBackDeploySaysTheServersAreBackAndALeftChangedOneSaysCheckThem() {
        Map<Integer, String> said = [4: 'every server is back on its previous release', 5: 'servers are LEFT CHANGED']
        said.each { int code, String text ->
            Steps s = run('main') { Steps st ->
                Closure write = st.agent.onRun
                st.agent.onRun = { Call c ->
                    write(c)
                    if (c.arg('label') == 'slipway deploy') {
                        st.agent.runStatus = code
                        st.agent.runStderr = 'slipway: error: app1: unhealthy\n'
                    }
                }
            }
            assert s.h.build.result == 'FAILURE'
            assert s.h.build.stages*.status == ['SUCCESS', 'SUCCESS', 'SUCCESS', 'FAILURE']
            assert s.h.logText.contains(text): s.h.logText
            assert !s.h.logText.contains(said[9 - code])
            assert s.h.build.description.contains("(exit ${code})")
            assert s.h.logText.contains("deployCompose: slipway deploy failed (exit ${code}: ")
        }
    }

    @Test
    void theReadmeQuickstartUsesTheCredentialIdsOfTheExampleAndTheTable() {
        String readme = new File(Fixture.REPO, 'README.md').text
        Set<String> ids = [] as Set
        (readme =~ /(?:\w+CredentialsId): '([^']+)'/).each { m -> ids.add(m[1]) }
        Set<String> known = [] as Set
        (EXAMPLE =~ /(?:\w+CredentialsId): '([^']+)'/).each { m -> known.add(m[1]) }
        (readme =~ /(?m)^\| `([a-z-]+)`(?: \(alternative\))? \|/).each { m -> known.add(m[1]) }
        assert known.containsAll(['registry', 'deploy-ssh', 'deploy-known-hosts', 'shop-env'])
        assert ids && known.containsAll(ids): "README names credential ids ${ids - known} that neither the example nor the table has"
    }
}
