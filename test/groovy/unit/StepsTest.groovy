import harness.Call
import harness.PipelineError
import org.junit.Test
import slipway.Cli

/** What each step does around the binary: results read, published, archived, and failures reported. */
class StepsTest {
    static String failure(Closure c) {
        try {
            c.call()
        } catch (PipelineError e) {
            return e.message
        }
        assert false: 'expected the step to stop the build'
    }

    static void assertSerializable(Object o) {
        new ObjectOutputStream(new ByteArrayOutputStream()).writeObject(o)
    }

    @Test
    void buildImagesReturnsTheReleaseFromTheManifest() {
        Steps s = new Steps()
        Map r = (Map) s.run('buildImages', [registry: 'reg.example'])
        assert r.project == 'shop'
        assert r.commit == Fixture.COMMIT
        assert r.shortCommit == Fixture.COMMIT[0..11]
        assert r.branch == 'main'
        assert r.dirty == false
        assert r.manifest == 'slipway-release.json'
        assert r.images == [api: "reg.example/shop-api:${Fixture.COMMIT}".toString()]
        assert r.tags == [api: [Fixture.COMMIT, 'latest']]
        assert r.digests == [:]
        assert r.services.api.imageId == 'sha256:' + '1' * 64
        assertSerializable(r)
        assert r.getClass() == LinkedHashMap && r.services.getClass() == LinkedHashMap
    }

    @Test
    void aFailedRunStopsTheBuildWithExitCodeAndTheBinarysLastErrorLine() {
        Steps s = new Steps()
        s.agent.runStatus = 2
        s.agent.runStderr = '[web] Step 1/4 : FROM python\n' +
                'slipway: error: compose.yaml: service "web": build context ./nope does not exist; fix the path or create it\n'
        assert failure { s.run('buildImages', [:]) } ==
                'buildImages: slipway build failed (exit 2: bad usage or bad input): compose.yaml: service "web": build context ./nope does not exist; fix the path or create it'
        assert s.h.calls('error').size() == 1
    }

    @Test
    void lastErrorLine() {
        assert Cli.lastError('a\nslipway: error: first\nb\nslipway: error: \u001B[31msecond\u001B[0m\ntrailing\n\n') == 'second'
        assert Cli.lastError('no prefix here\nlast words\n\n') == 'last words'
        assert Cli.lastError('') == ''
        assert Cli.lastError(null) == ''
        assert Cli.lastError('slipway: error: ' + 'x' * 600).length() == 500
        assert Cli.failure('deployCompose', 5, '') == 'deployCompose: slipway deploy failed (exit 5: deploy failed and hosts are left changed)'
        assert Cli.failure('deployCompose', 130, 'interrupted') == 'deployCompose: slipway deploy failed (exit 130: cancelled): interrupted'
    }

    @Test
    void buildImagesWithoutAManifestAfterSuccessIsAnError() {
        Steps s = new Steps()
        s.agent.onRun = null
        assert failure { s.run('buildImages', [manifest: 'out/r.json']) } == 'buildImages: slipway build succeeded but no manifest is at out/r.json'
    }

    @Test
    void runTestsPublishesResultsAndArchivesLogs() {
        Steps s = new Steps()
        Map r = (Map) s.run('runTests', [results: 'out/tests'])
        Call junit = s.h.calls('junit')[0]
        assert junit.args == [testResults: 'out/tests/**/*.xml', allowEmptyResults: false]
        assert junit.extra.files == ['out/tests/tests/junit.xml']
        Call archive = s.h.calls('archiveArtifacts')[0]
        assert archive.args == [artifacts: 'out/tests/**', allowEmptyArchive: true]
        assert archive.extra.files == ['out/tests/logs/web.log', 'out/tests/summary.json', 'out/tests/tests/junit.xml']
        assert r == [status : 'passed', exitCode: 0, results: 'out/tests', tests: [total: 1, failed: 0, skipped: 0, passed: 1],
                     summary: [services: [tests: [exitCode: 0]]]]
        assertSerializable(r)
        assert s.h.build.currentResult == 'SUCCESS'
    }

    static Steps failingTests(Steps s) {
        Closure write = s.agent.onRun
        s.agent.onRun = { Call c ->
            write(c)
            boolean test = Fixture.argv((String) c.arg('script'))[1] == 'test'
            if (test) {
                s.h.seed('test-results/tests/junit.xml', '<testsuite><testcase name="ok"/><testcase name="bad"><failure/></testcase></testsuite>')
            }
            s.agent.runStatus = test ? 3 : 0
            s.agent.runStderr = test ? '[tests] FAILED test_items\nslipway: error: tests: exit code 1 (1 of 2 tests failed); logs in test-results/logs\n' : ''
        }
        return s
    }

    @Test
    void failingTestsArePublishedThenTheBuildFails() {
        Steps s = failingTests(new Steps())
        assert failure { s.run('runTests', [:]) } ==
                'runTests: slipway test failed (exit 3: tests failed or timed out): tests: exit code 1 (1 of 2 tests failed); logs in test-results/logs'
        List<String> order = s.h.calls.findAll { it.name in ['junit', 'archiveArtifacts', 'error'] || s.agent.runs.contains(it) }*.name
        assert order == ['sh', 'junit', 'archiveArtifacts', 'error']
        assert s.h.calls('junit')[0].args.allowEmptyResults == true // a crashed run may have no XML: the exit code must not be hidden
        assert s.h.calls('junit')[0].extra.summary.failCount == 1
    }

    @Test
    void failingTestsMarkTheBuildUnstableWhenAsked() {
        Steps s = failingTests(new Steps())
        Map r = (Map) s.run('runTests', [unstableOnFailure: true])
        assert s.h.calls('error').isEmpty()
        assert s.h.calls('unstable')[0].arg('value') ==
                'runTests: slipway test failed (exit 3: tests failed or timed out): tests: exit code 1 (1 of 2 tests failed); logs in test-results/logs'
        assert s.h.build.result == 'UNSTABLE'
        assert r.status == 'failed' && r.exitCode == 3 && r.tests == [total: 2, failed: 1, skipped: 0, passed: 1]
    }

    @Test
    void aTimedOutStackStaysFailureEvenWithUnstableOnFailure() {
        Steps s = failingTests(new Steps())
        Closure write = s.agent.onRun
        s.agent.onRun = { Call c ->
            write(c)
            s.h.seed('test-results/summary.json', '{"result":"timeout","exitCode":3,"message":"timed out after 20m"}')
        }
        assert failure { s.run('runTests', [unstableOnFailure: true]) }.startsWith('runTests: slipway test failed (exit 3: ')
        assert s.h.calls('unstable').isEmpty()
        // The same run with a plain red test is UNSTABLE: the summary's result decides.
        s = failingTests(new Steps())
        write = s.agent.onRun
        s.agent.onRun = { Call c ->
            write(c)
            s.h.seed('test-results/summary.json', '{"result":"failed","exitCode":3}')
        }
        s.run('runTests', [unstableOnFailure: true])
        assert s.h.build.result == 'UNSTABLE'
    }

    @Test
    void anAbortDuringJunitStaysAnAbort() {
        Steps s = new Steps()
        InterruptedException abort = new InterruptedException('aborted by user') // FlowInterruptedException's base class
        s.h.beforeStep = { String name -> if (name == 'junit') { throw abort } }
        try {
            s.run('runTests', [:])
            assert false
        } catch (InterruptedException e) {
            assert e.is(abort) // not turned into "no JUnit XML was found"
        }
        assert s.h.calls('archiveArtifacts').size() == 1 // the logs are still archived
    }

    @Test
    void aBrokenTestRunIsAnErrorEvenWithUnstableOnFailure() {
        Steps s = new Steps()
        s.agent.onRun = null
        s.agent.runStatus = 1
        s.agent.runStderr = 'slipway: error: engine: Cannot connect to the Docker daemon\n'
        assert failure { s.run('runTests', [unstableOnFailure: true]) } ==
                'runTests: slipway test failed (exit 1: failed before changing anything): engine: Cannot connect to the Docker daemon'
        assert s.h.calls('junit').size() == 1 && s.h.calls('archiveArtifacts').size() == 1
    }

    @Test
    void passingTestsWithoutJUnitXmlAreAConfigurationError() {
        Steps s = new Steps()
        s.agent.onRun = null
        String m = failure { s.run('runTests', [:]) }
        assert m.startsWith('runTests: the tests passed but no JUnit XML was found under test-results/ (No test report files were found. Configuration error?); name the result paths')
        assert s.h.calls('archiveArtifacts').size() == 1
        s = new Steps()
        s.agent.onRun = null
        Map r = (Map) s.run('runTests', [allowEmptyResults: true])
        assert r.status == 'passed' && r.tests.total == 0
    }

    @Test
    void pushImagesArchivesManifestAndPinnedComposeAndReturnsDigests() {
        Steps s = new Steps()
        Map r = (Map) s.run('pushImages', [registryCredentialsId: 'registry', pinned: 'deploy/pinned.yml'])
        assert s.h.calls('archiveArtifacts')[0].args == [artifacts: 'slipway-release.json,deploy/pinned.yml', fingerprint: true]
        assert s.h.calls('archiveArtifacts')[0].extra.files == ['deploy/pinned.yml', 'slipway-release.json']
        String digest = 'sha256:' + 'd' * 64
        assert r.digests == [api: digest]
        assert r.images == [api: "reg.example/shop-api@${digest}".toString()]
        assert r.pinned == 'deploy/pinned.yml'
        assert r.tags.api == [Fixture.COMMIT, 'latest']
        assertSerializable(r)
    }

    @Test
    void aFailedPushArchivesNothing() {
        Steps s = new Steps()
        s.agent.onRun = null
        s.agent.runStatus = 1
        s.agent.runStderr = 'slipway: error: pushing reg.example/shop-api: 401 Unauthorized from reg.example (credentials from SLIPWAY_REGISTRY_USER); check registryCredentialsId\n'
        assert failure { s.run('pushImages', [registryCredentialsId: 'registry']) }.endsWith('401 Unauthorized from reg.example (credentials from SLIPWAY_REGISTRY_USER); check registryCredentialsId')
        assert s.h.calls('archiveArtifacts').isEmpty()
    }

    @Test
    void deployComposeReturnsPerHostResults() {
        Steps s = new Steps()
        s.agent.runStdout = '{"command":"deploy","project":"shop","release":"abc","strategy":"recreate","status":"ok","exitCode":0,' +
                '"hosts":[{"host":"app1","status":"deployed","release":"abc"},{"host":"app2","status":"deployed","release":"abc"}]}'
        Map r = (Map) s.run('deployCompose', [hosts: ['app1', 'app2'], dir: '/srv/app'])
        assert r.exitCode == 0 && r.status == 'ok' && r.release == 'abc'
        assert r.hosts == [app1: [host: 'app1', status: 'deployed', release: 'abc'], app2: [host: 'app2', status: 'deployed', release: 'abc']]
        assert r.report.strategy == 'recreate'
        assertSerializable(r)
        // stdout is the JSON report, not echoed to the console
        assert !s.agent.runs[-1].arg('script').contains('cat "$run/stdout"')
    }

    @Test
    void deployComposeAcceptsAHostMapAndToleratesNonJsonOutput() {
        Steps s = new Steps()
        s.agent.runStdout = '{"hosts":{"app1":{"status":"deployed"}}}'
        assert ((Map) s.run('deployCompose', [hosts: 'app1', dir: '/srv/app'])).hosts == [app1: [status: 'deployed']]
        s = new Steps()
        s.agent.runStdout = 'not json'
        assert ((Map) s.run('deployCompose', [hosts: 'app1', dir: '/srv/app'])).hosts == [:]
    }

    @Test
    void deployFailuresSayWhetherHostsWereRolledBack() {
        Steps s = new Steps()
        s.agent.runStatus = 4
        s.agent.runStderr = '[app1] health: web unhealthy\n[app1] rolled back to 1111111\nslipway: error: app1: web did not become healthy within 2m; rolled back to 1111111\n'
        assert failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app']) } ==
                'deployCompose: slipway deploy failed (exit 4: deploy failed and every changed host is back on its previous release): app1: web did not become healthy within 2m; rolled back to 1111111'
        s = new Steps()
        s.agent.runStatus = 5
        s.agent.runStderr = 'slipway: error: app1: rollback failed: pull: connection reset\n'
        assert failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app', onFailure: 'stop']) } ==
                'deployCompose: slipway deploy failed (exit 5: deploy failed and hosts are left changed): app1: rollback failed: pull: connection reset'
    }

    @Test
    void rollbackComposeReturnsPerHostResults() {
        Steps s = new Steps()
        s.agent.runStdout = '{"hosts":[{"host":"app1","status":"rolled back","release":"1111111"}]}'
        Map r = (Map) s.run('rollbackCompose', [hosts: 'app1', dir: '/srv/app', to: '1111111'])
        assert s.agent.lastArgv()[1..-1] == ['rollback', '--host', 'app1', '--dir', '/srv/app', '--to', '1111111', '--json']
        assert r.hosts.app1.status == 'rolled back'
    }

    @Test
    void stepsWorkInsideDir() {
        Steps s = new Steps()
        s.h.run('''
            dir('services/shop') {
                buildImages()
                pushImages()
            }
        ''')
        assert s.h.build.result == 'SUCCESS': s.h.logText
        assert s.agent.runs*.cwd == ['/ws/app/services/shop', '/ws/app/services/shop']
        // The library's state is in <workspace>@tmp, not services/shop@tmp inside the workspace.
        assert s.agent.curlCalls == 1
        assert s.h.calls('unstash').isEmpty()
        assert s.agent.runs.every { Fixture.argv((String) it.arg('script'))[0] == BinaryTest.BIN }
        assert !s.h.nodeFs().keySet().any { it.startsWith('/ws/app/services/shop@tmp') }
        assert s.h.calls('archiveArtifacts')[0].cwd == '/ws/app/services/shop'
    }

    @Test
    void failOnErrorFalseReturnsTheRealResultAndTheReportIsArchivedAlways() {
        Steps s = new Steps()
        s.agent.runStatus = 5
        s.agent.runStdout = '{"status":"failed","release":"abc","hosts":[{"host":"app1","status":"left-changed"}]}'
        s.agent.runStderr = 'slipway: error: app1: rollback failed\n'
        Map r = (Map) s.run('rollbackCompose', [hosts: 'app1', dir: '/srv/app', failOnError: false])
        assert r.exitCode == 5 && !r.rolledBack
        assert r.hosts.app1.status == 'left-changed'
        assert r.message == 'rollbackCompose: slipway rollback failed (exit 5: deploy failed and hosts are left changed): app1: rollback failed'
        assert s.h.build.result == null // the caller decides
        assert s.h.calls('archiveArtifacts')*.args.artifacts == [r.reportArtifact]
        assert r.reportArtifact ==~ /slipway-rollback-report-[0-9a-f]{8}\.json/
        // Archived from the run's own directory under <workspace>@tmp, which is then removed.
        assert s.h.calls('archiveArtifacts')[0].cwd ==~ /\/ws\/app@tmp\/slipway\/runs\/rollback-[0-9a-f]{8}/
        assert s.h.build.description == 'rollback of abc to app1 FAILED: hosts LEFT CHANGED, check them now (exit 5)'
        // The default stops the build, and still archives the report first.
        s = new Steps()
        s.agent.runStatus = 4
        s.agent.runStdout = '{"status":"rolled-back","release":"abc","hosts":[{"host":"app1"}]}'
        assert BinaryTest.failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app']) }.startsWith('deployCompose: slipway deploy failed (exit 4: ')
        assert s.h.calls('archiveArtifacts')*.args.artifacts*.replaceAll('[0-9a-f]{8}', 'ID') == ['slipway-deploy-report-ID.json']
        assert s.h.build.description.contains('rolled back, every host on its previous release (exit 4)')
        // Success is described too.
        s = new Steps()
        s.agent.runStdout = '{"status":"ok","release":"abc","hosts":[{"host":"app1"}]}'
        assert ((Map) s.run('deployCompose', [hosts: 'app1', dir: '/srv/app'])).exitCode == 0
        assert s.h.build.description == 'deploy of abc to app1: done'
    }

    @Test
    void positionalArgumentsAndStringBooleansGetFriendlyErrors() {
        Steps s = new Steps()
        assert BinaryTest.failure { s.h.step('pushImages', ['x'] as Object[]) } ==
                "pushImages: parameters are named, like pushImages(manifest: 'slipway-release.json'); got String 'x'"
        assert BinaryTest.failure { s.run('buildImages', [pull: 'false']) } ==
                "buildImages: parameter 'pull' must be a Boolean (true or false); got String 'false' (write pull: false without quotes; a job parameter: params.X.toBoolean())"
        assert BinaryTest.failure { s.run('buildImages', [pull: 1]) }.startsWith("buildImages: parameter 'pull' must be a Boolean (true or false); got Integer 1")
    }

    @Test
    void aChangedHostKeyNamesTheKnownHostsCredentialToUpdate() {
        Steps s = new Steps()
        s.agent.runStatus = 1
        s.agent.runStderr = 'slipway: error: app1: @@@ HOST KEY CHANGED for app1 @@@\nIf the change is expected, remove the old entry with\n' +
                '  ssh-keygen -R app1 -f /ws/app@tmp/secretFiles/x/known_hosts\n'
        String m = BinaryTest.failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app', knownHostsCredentialsId: 'deploy-known-hosts']) }
        assert m.contains("update the known_hosts Secret file credential 'deploy-known-hosts'")
        assert m.count('deploy-known-hosts') == 1
        // Without the credential (the agent's own known_hosts) the binary's advice stands alone.
        s = new Steps()
        s.agent.runStatus = 1
        s.agent.runStderr = 'slipway: error: app1: @@@ HOST KEY CHANGED for app1 @@@\n'
        assert !BinaryTest.failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app']) }.contains('Secret file credential')
    }
}
