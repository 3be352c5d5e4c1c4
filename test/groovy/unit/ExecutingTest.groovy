import harness.Harness
import harness.PipelineError
import org.junit.After
import org.junit.Before
import org.junit.Test

import java.nio.file.Files
import java.security.MessageDigest

/**
 * EXECUTING mode: real /bin/sh, real files, credentials bound through real environment
 * variables and secret files. The binary is FakeSlipway; the download path is real (curl,
 * sha256sum, tar) against file:// URLs.
 */
class ExecutingTest {
    // Secrets a shell would love to interpret.
    static final String PASSWORD = 'p$(touch /tmp/pwned)`id`\'"\\%s*\nline2'
    static final String PASSPHRASE = 'pass $HOME phrase'
    static final String KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-exec\n-----END OPENSSH PRIVATE KEY-----\n'

    File ws
    FakeSlipway fake
    Harness h

    @Before
    void setUp() {
        ws = Files.createTempDirectory('slipway-exec-ws').toFile()
        fake = new FakeSlipway()
        h = Harness.executing(Fixture.REPO, ws.path)
        h.out = null // quiet; h.logText keeps the console
        h.sleepScale = 0
        h.setGlobalEnv('FAKE_SLIPWAY_OUT', fake.out.path)
        h.setGlobalEnv('BRANCH_NAME', 'main')
        h.credential('registry', [type: 'usernamePassword', username: 'ci-user', password: PASSWORD])
        h.credential('deploy-ssh', [type: 'sshUserPrivateKey', username: 'deploy', privateKey: KEY, passphrase: PASSPHRASE])
        h.credential('deploy-known-hosts', [type: 'file', fileName: 'known_hosts', content: 'app1 ssh-ed25519 AAAAC3Nz-exec\n'])
        h.credential('shop-env', [type: 'file', fileName: 'shop.env', content: 'DB_PASSWORD=from-env-file\n'])
        h.credential('docker-config', [type: 'file', fileName: 'config.json', content: '{"auths":{}}'])
    }

    @After
    void tearDown() {
        ws.deleteDir()
        new File(ws.path + '@tmp').deleteDir()
        fake.dir.deleteDir()
    }

    @Test
    void hostileParameterValuesReachTheBinaryUnchanged() {
        String weird = "it's \$(touch ${ws}/pwned) `id` \"q\" \\ *\nnext"
        h.callStep('deployCompose', [tool     : fake.bin.path, hosts: ['app1', "o'neil@app2:2222", weird], dir: '/srv/my shop',
                                     smokeUrl : 'http://127.0.0.1:8080/?a=$b&c', preDeploy: ['web: migrate && echo "done"', weird],
                                     sshCredentialsId: 'deploy-ssh', healthTimeout: 90])
        assert fake.argv('deploy') == ['deploy', '--host', 'deploy@app1', '--host', "o'neil@app2:2222", '--host', 'deploy@' + weird,
                                       '--dir', '/srv/my shop', '--identity', fake.argv('deploy')[10], '--manifest', 'slipway-release.json',
                                       '--health-timeout', '90s', '--smoke-url', 'http://127.0.0.1:8080/?a=$b&c',
                                       '--pre-deploy', 'web: migrate && echo "done"', '--pre-deploy', weird, '--json']
        assert fake.argv('deploy')[10].contains('@tmp/secretFiles/')
        assert !new File(ws, 'pwned').exists()
    }

    @Test
    void credentialsReachTheBinaryThroughItsEnvironmentAndFilesOnly() {
        h.callStep('deployCompose', [tool                  : fake.bin.path, hosts: 'app1', dir: 'd', sshCredentialsId: 'deploy-ssh',
                                     knownHostsCredentialsId: 'deploy-known-hosts', envFileCredentialsId: 'shop-env',
                                     registryCredentialsId : 'registry'])
        Map<String, String> env = fake.env('deploy')
        assert env.SLIPWAY_REGISTRY_USER == 'ci-user'
        assert env.SLIPWAY_REGISTRY_PASSWORD == PASSWORD
        assert env.SLIPWAY_SSH_PASSPHRASE == PASSPHRASE
        assert fake.seen('identity') == KEY
        assert fake.seen('known-hosts') == 'app1 ssh-ed25519 AAAAC3Nz-exec\n'
        assert fake.seen('env-file') == 'DB_PASSWORD=from-env-file\n'
        // The secret files are gone once the step is done.
        File secretFiles = new File(ws.path + '@tmp/secretFiles')
        assert !secretFiles.exists() || secretFiles.list().length == 0
        // No secret in the console or in any script, and the would-be command substitution never ran.
        assert !h.logText.contains('p$(touch') && !h.logText.contains(PASSPHRASE)
        assert !h.scripts().any { it.contains('p$(touch') || it.contains(PASSPHRASE) || it.contains('b3BlbnNzaC1rZXkt') }
        assert !new File('/tmp/pwned').exists() || new File('/tmp/pwned').lastModified() < System.currentTimeMillis() - 600000
    }

    @Test
    void dockerConfigCredentialBecomesDockerConfigForTheRunOnly() {
        h.callStep('pushImages', [tool: fake.bin.path, dockerConfigCredentialsId: 'docker-config'])
        String dockerConfig = fake.env('push').DOCKER_CONFIG
        assert dockerConfig ==~ /.*@tmp\/slipway\/runs\/push-[0-9a-f]{8}\/docker-config/
        assert fake.seen('docker-config') == '{"auths":{}}'
        assert !new File(dockerConfig).exists()
        // pushImages archived manifest and pinned compose file
        assert new File(h.archiveDir, 'slipway-release.json').text.contains('sha256:dd')
        assert new File(h.archiveDir, 'slipway-compose.pinned.yml').exists()
    }

    @Test
    void failureCarriesExitCodeAndLastErrorLineWhileStderrStreamsToTheConsole() {
        h.setGlobalEnv('FAKE_EXIT_DEPLOY', '4')
        h.setGlobalEnv('FAKE_ERROR', 'app1: web unhealthy after 2m; rolled back to 1111111')
        try {
            h.callStep('deployCompose', [tool: fake.bin.path, hosts: 'app1', dir: '/srv/app'])
            assert false
        } catch (PipelineError e) {
            assert e.message == 'deployCompose: slipway deploy failed (exit 4: deploy failed and every changed host is back on its previous release): app1: web unhealthy after 2m; rolled back to 1111111'
        }
        List<String> lines = h.logText.readLines()
        int cmd = lines.findIndexOf { it.startsWith('+ ') && it.contains(' deploy --host app1') }
        assert cmd >= 0 && lines.indexOf('[deploy] working') > cmd
        assert lines.contains('slipway: error: app1: web unhealthy after 2m; rolled back to 1111111')
    }

    // ------------------------------------------------------------- masking and the report file

    /** A password with the characters JSON and Go's encoder escape: \ " < > & */
    static final String JSON_PASSWORD = 'S3cr3t-"q"-<a>&b\\c-9Xz'

    /** Every secret of a run in the text, named; [] when none is there. */
    private List<String> leaked(String text, Map<String, String> secrets) {
        return secrets.findAll { k, v -> text.contains(v) }.collect { it.key }
    }

    @Test
    void whatTheBinarySaysIsMaskedBeforeTheStepRepeatsItAfterTheCredentialsClose() {
        // The binary puts the registry password, the SSH passphrase and the known_hosts
        // credential's file path into its error line and into the --json report. The step
        // repeats them after withCredentials closes (the error, the result Map, the archived
        // report), where Jenkins masks nothing: the step must have masked them itself.
        h.credential('registry-json', [type: 'usernamePassword', username: 'ci-user', password: JSON_PASSWORD])
        h.setGlobalEnv('FAKE_EXIT_DEPLOY', '5')
        h.setGlobalEnv('FAKE_ERROR', 'app1: login failed with')
        h.setGlobalEnv('FAKE_ERROR_ENV', 'SLIPWAY_REGISTRY_PASSWORD SLIPWAY_SSH_PASSPHRASE SLIPWAY_KNOWN_HOSTS_FILE')
        Map args = [tool                   : fake.bin.path, hosts: 'app1', dir: '/srv/app', registryCredentialsId: 'registry-json',
                    sshCredentialsId       : 'deploy-ssh', knownHostsCredentialsId: 'deploy-known-hosts', failOnError: false]
        Map r = (Map) h.callStep('deployCompose', args)
        String knownHosts = fake.env('deploy').SLIPWAY_KNOWN_HOSTS_FILE
        assert knownHosts.contains('@tmp/secretFiles/')
        Map<String, String> secrets = [password: JSON_PASSWORD, passphrase: PASSPHRASE, path: knownHosts]
        assert r.exitCode == 5
        assert r.message == 'deployCompose: slipway deploy failed (exit 5: deploy failed and hosts are left changed): app1: login failed with **** **** ****'
        assert r.hosts['deploy@app1'].error == 'app1: login failed with **** **** ****' // usernames stay, as in Jenkins
        assert leaked(groovy.json.JsonOutput.toJson(r), secrets) == []
        assert leaked(h.logText.toString(), secrets) == []
        File[] reports = h.archiveDir.listFiles().findAll { it.name.startsWith('slipway-deploy-report') } as File[]
        assert reports.length == 1 && reports[0].text.contains('login failed with **** **** ****')
        assert leaked(reports[0].text, secrets) == []

        // With failOnError (the default) the build stops with the masked line; a password
        // with a newline is masked line by line.
        h.setGlobalEnv('FAKE_ERROR_ENV', 'SLIPWAY_REGISTRY_PASSWORD')
        args.registryCredentialsId = 'registry'
        args.remove('failOnError')
        try {
            h.callStep('deployCompose', args)
            assert false
        } catch (PipelineError e) {
            assert e.message.endsWith('app1: login failed with ****')
            assert !e.message.contains('p$(touch') && !e.message.contains('line2')
        }
    }

    @Test
    void parallelDeploysInOneDirectoryEachArchiveAndReadTheirOwnReport() {
        h.setGlobalEnv('FAKE_SLEEP', '1') // the two runs overlap
        String result = h.run("""
            def r = parallel(
                one: { deployCompose(tool: '${fake.bin.path}', hosts: 'app1', dir: '/srv/app') },
                two: { deployCompose(tool: '${fake.bin.path}', hosts: 'app2', dir: '/srv/app') })
            echo "one=\${r.one.hosts.keySet()} \${r.one.reportArtifact}"
            echo "two=\${r.two.hosts.keySet()} \${r.two.reportArtifact}"
        """)
        assert result == 'SUCCESS': h.logText
        assert h.logText.contains('one=[app1] slipway-deploy-report-')
        assert h.logText.contains('two=[app2] slipway-deploy-report-')
        List<String> names = h.calls('archiveArtifacts')*.args*.artifacts
        assert names.size() == 2 && names[0] != names[1]
        assert names.every { it ==~ /slipway-deploy-report-[0-9a-f]{8}\.json/ }
        // Each archived report is its own run's, and the workspace keeps no copy.
        Map<String, String> hostOf = names.collectEntries { [(it): new File(h.archiveDir, it).text] }
        assert hostOf.values().count { it.contains('"host":"app1"') } == 1
        assert hostOf.values().count { it.contains('"host":"app2"') } == 1
        assert !ws.list().any { it.startsWith('slipway-deploy-report') }
    }

    @Test
    void runTestsPublishesRealJUnitFilesAndFailsAfterwards() {
        h.setGlobalEnv('FAKE_EXIT_TEST', '3')
        try {
            h.callStep('runTests', [tool: fake.bin.path])
            assert false
        } catch (PipelineError e) {
            assert e.message.startsWith('runTests: slipway test failed (exit 3: tests failed or timed out)')
        }
        assert h.calls('junit')[0].extra.summary.totalCount == 2
        assert h.calls('junit')[0].extra.summary.failCount == 1
        assert new File(h.archiveDir, 'test-results/logs/web.log').text == 'web log\n'
        assert h.build.currentResult == 'UNSTABLE' // junit marks it; error() then fails the stage
    }

    // ------------------------------------------------------------- the real download path

    static String sha256(File f) {
        return MessageDigest.getInstance('SHA-256').digest(f.bytes).encodeHex().toString()
    }

    /** A release of the fake binary in dir, as `make release` would lay it out; returns the pinned json. */
    static String release(FakeSlipway fake, File dir, Map override = [:]) {
        dir.mkdirs()
        File stage = new File(dir, 'stage')
        stage.mkdirs()
        File bin = new File(stage, 'slipway')
        bin.text = FakeSlipway.SCRIPT
        bin.setExecutable(true)
        File archive = new File(dir, 'slipway_9.9.9_linux_amd64.tar.gz')
        Process p = ['tar', '-czf', archive.path, '-C', stage.path, 'slipway'].execute()
        assert p.waitFor() == 0
        Map plat = [archive: archive.name, sha256: sha256(archive), binarySha256: sha256(bin)] + override
        return groovy.json.JsonOutput.toJson([version: '9.9.9', url: "file://${dir}/{archive}".toString(), platforms: ['linux-amd64': plat]])
    }

    @Test
    void downloadsVerifiesAndCachesTheBinaryForReal() {
        assert 'uname -m'.execute().text.trim() in ['x86_64', 'amd64']
        File server = new File(fake.dir, 'releases')
        h.resources['slipway/release.json'] = release(fake, server)
        h.callStep('buildImages', [:])
        File cached = new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64/slipway')
        assert cached.canExecute()
        assert fake.argv('build') == ['build', '--manifest', 'slipway-release.json']
        assert h.calls('stash').size() == 1
        // The second step uses the verified copy: remove the "server" to prove it.
        server.deleteDir()
        h.callStep('pushImages', [:])
        assert fake.argv('push') != null
        assert h.scripts().count { it.contains('curl') } == 1
        assert h.scripts().count { it.contains(' version 2>&1') } == 1
    }

    @Test
    void concurrentFirstUsesInParallelBranchesAllSucceed() {
        h.resources['slipway/release.json'] = release(fake, new File(fake.dir, 'releases'))
        // Branches on real threads in one workspace: every one finds no binary yet and
        // provisions it into the same <workspace>@tmp at the same time.
        String result = h.run('''
            parallel(
                a: { buildImages(manifest: 'a.json') },
                b: { buildImages(manifest: 'b.json') },
                c: { buildImages(manifest: 'c.json') },
                d: { buildImages(manifest: 'd.json') })
        ''')
        assert result == 'SUCCESS': h.logText
        assert ['a', 'b', 'c', 'd'].every { new File(ws, "${it}.json").isFile() }
        File dir = new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64')
        assert dir.list().toList() == ['slipway']: 'no staging dir or partial file is left'
        assert new File(dir, 'slipway').canExecute()
        File runs = new File(ws.path + '@tmp/slipway/runs')
        assert !runs.exists() || runs.list().length == 0: 'raw run output is deleted'
        // Each branch either downloaded or found the finished copy; how many raced is up to the scheduler.
        int downloads = h.scripts().count { it.contains('curl') }
        assert downloads >= 1 && downloads <= 4
    }

    @Test
    void theAgentCacheIsKeyedBySha256AndSharedAcrossWorkspaces() {
        File cache = Files.createTempDirectory('slipway-cache').toFile()
        try {
            String pinned = release(fake, new File(fake.dir, 'releases'))
            String sha = ((Map) new groovy.json.JsonSlurper().parseText(pinned)).platforms['linux-amd64'].binarySha256
            h.resources['slipway/release.json'] = pinned
            h.setGlobalEnv('SLIPWAY_CACHE_DIR', cache.path)
            h.callStep('buildImages', [:])
            assert new File(cache, "${sha}/slipway").canExecute()
            assert cache.list().toList() == [sha]
            assert new File(cache, sha).list().toList() == ['slipway']
            assert !new File(ws.path + '@tmp/slipway/9.9.9').exists(): 'the workspace holds no copy of its own'
            // Another job's workspace on the same agent: no download.
            File ws2 = Files.createTempDirectory('slipway-exec-ws2').toFile()
            try {
                Harness h2 = Harness.executing(Fixture.REPO, ws2.path)
                h2.out = null
                h2.setGlobalEnv('FAKE_SLIPWAY_OUT', fake.out.path)
                h2.setGlobalEnv('SLIPWAY_CACHE_DIR', cache.path)
                h2.resources['slipway/release.json'] = pinned
                h2.callStep('buildImages', [:])
                assert !h2.scripts().any { it.contains('curl') }
                assert h2.calls('echo').any { it.arg('value').toString().endsWith('from the agent cache)') }
            } finally {
                ws2.deleteDir()
                new File(ws2.path + '@tmp').deleteDir()
            }
        } finally {
            cache.deleteDir()
        }
    }

    @Test
    void stateStaysInTheWorkspacesOwnTmpInsideDir() {
        h.resources['slipway/release.json'] = release(fake, new File(fake.dir, 'releases'))
        assert h.run("dir('sub') { buildImages() }") == 'SUCCESS': h.logText
        assert new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64/slipway').canExecute()
        assert !new File(ws, 'sub@tmp').exists(): 'nothing of the library inside the workspace'
    }

    @Test
    void aMirrorLoginComesFromTheCredentialThroughANetrcFileNeverArgv() {
        String password = 'mirror-pw-$(id)-`x`-\'q\'-Z9'
        File releases = new File(fake.dir, 'releases')
        String pinned = release(fake, releases)
        List<String> seenAuth = Collections.synchronizedList([])
        com.sun.net.httpserver.HttpServer server = com.sun.net.httpserver.HttpServer.create(new InetSocketAddress('127.0.0.1', 0), 0)
        server.createContext('/mirror/') { ex ->
            String auth = ex.requestHeaders.getFirst('Authorization')
            seenAuth.add(String.valueOf(auth))
            File f = new File(releases, ex.requestURI.path.substring('/mirror/'.length()))
            if (auth != 'Basic ' + "mirror-user:${password}".bytes.encodeBase64().toString() || !f.isFile()) {
                ex.sendResponseHeaders(401, -1)
            } else {
                ex.sendResponseHeaders(200, f.length())
                ex.responseBody.withStream { it << f.bytes }
            }
            ex.close()
        }
        server.start()
        try {
            h.resources['slipway/release.json'] = pinned
            h.credential('mirror', [type: 'usernamePassword', username: 'mirror-user', password: password])
            h.setGlobalEnv('SLIPWAY_DOWNLOAD_URL', "http://127.0.0.1:${server.address.port}/mirror/{archive}".toString())
            h.setGlobalEnv('SLIPWAY_DOWNLOAD_CREDENTIALS_ID', 'mirror')
            h.callStep('buildImages', [:])
            assert new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64/slipway').canExecute()
            assert seenAuth.size() == 1 && seenAuth[0].startsWith('Basic ')
            assert !h.scripts().any { it.contains(password) || it.contains('mirror-user') }
            assert !h.logText.contains(password)
            assert new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64').list().toList() == ['slipway']: 'the netrc file is gone'
            // A wrong password: the 401 is reported, without any login in the message.
            h2Fails(server.address.port, password)
        } finally {
            server.stop(0)
        }
    }

    private void h2Fails(int port, String password) {
        File ws2 = Files.createTempDirectory('slipway-exec-ws3').toFile()
        try {
            Harness h2 = Harness.executing(Fixture.REPO, ws2.path)
            h2.out = null
            h2.sleepScale = 0
            h2.resources['slipway/release.json'] = h.resources['slipway/release.json']
            h2.credential('mirror', [type: 'usernamePassword', username: 'mirror-user', password: 'wrong-pw'])
            h2.setGlobalEnv('SLIPWAY_DOWNLOAD_URL', "http://someone:token-in-url@127.0.0.1:${port}/mirror/{archive}".toString())
            h2.setGlobalEnv('SLIPWAY_DOWNLOAD_CREDENTIALS_ID', 'mirror')
            try {
                h2.callStep('buildImages', [:])
                assert false
            } catch (PipelineError e) {
                assert e.message.contains("from http://127.0.0.1:${port}/mirror/slipway_9.9.9_linux_amd64.tar.gz after 3 attempts")
            }
            assert !h2.logText.contains('token-in-url') && !h2.logText.contains('wrong-pw')
            assert h2.logText.contains('(curl exit 22, attempt 1 of 3)')
        } finally {
            ws2.deleteDir()
            new File(ws2.path + '@tmp').deleteDir()
        }
    }

    @Test
    void aWorkspacePathWithSpacesQuotesAndDollarsWorks() {
        File odd = new File(ws, "job's \$HOME `x` dir")
        Harness h2 = Harness.executing(Fixture.REPO, odd.path)
        h2.out = null
        h2.setGlobalEnv('FAKE_SLIPWAY_OUT', fake.out.path)
        h2.credential('docker-config', [type: 'file', fileName: 'config.json', content: '{"auths":{}}'])
        h2.resources['slipway/release.json'] = release(fake, new File(fake.dir, 'releases'))
        Map r = (Map) h2.callStep('pushImages', [dockerConfigCredentialsId: 'docker-config'])
        assert r.digests == [web: 'sha256:dd']
        assert new File(odd.path + '@tmp/slipway/9.9.9/linux-amd64/slipway').canExecute()
        assert fake.env('push').DOCKER_CONFIG.startsWith(odd.path + '@tmp/')
        assert new File(odd, 'slipway-compose.pinned.yml').exists()
        new File(odd.path + '@tmp').deleteDir()
    }

    @Test
    void aDownloadWhoseChecksumDiffersIsRefusedAndDeleted() {
        h.resources['slipway/release.json'] = release(fake, new File(fake.dir, 'releases'), [sha256: '0' * 64])
        try {
            h.callStep('buildImages', [:])
            assert false
        } catch (PipelineError e) {
            assert e.message.startsWith('buildImages: checksum mismatch for file://')
        }
        File dir = new File(ws.path + '@tmp/slipway/9.9.9/linux-amd64')
        assert !dir.exists() || dir.list().length == 0
        assert fake.argv('build') == null
    }

    @Test
    void anUnreachableDownloadIsRetriedThenReported() {
        h.resources['slipway/release.json'] = groovy.json.JsonOutput.toJson([version  : '9.9.9', url: "file://${fake.dir}/nowhere/{archive}".toString(),
                                                                             platforms: ['linux-amd64': [archive: 'x.tar.gz', sha256: '0' * 64, binarySha256: '0' * 64]]])
        try {
            h.callStep('buildImages', [:])
            assert false
        } catch (PipelineError e) {
            assert e.message.contains('after 3 attempts')
        }
        assert h.scripts().count { it.contains('curl') } == 3
        assert h.calls('sleep').size() == 2
    }

    // ------------------------------------------------------------- Jenkinsfile.example for real

    @Test
    void theExampleRunsEndToEndWithTheFakeBinary() {
        h.setGlobalEnv('SLIPWAY_BIN', fake.bin.path)
        h.params.DEPLOY_HOSTS = 'app1'
        assert h.run(ExampleTest.EXAMPLE) == 'SUCCESS': h.logText
        assert ['build', 'test', 'push', 'deploy'].every { fake.argv(it) != null }
        assert new File(h.archiveDir, 'slipway-compose.pinned.yml').exists()
        assert h.logText.contains('Pushed [web:sha256:dd]')
    }

    @Test
    void theExampleWithFailingTestsPublishesThemAndNeitherPushesNorDeploys() {
        h.setGlobalEnv('SLIPWAY_BIN', fake.bin.path)
        h.setGlobalEnv('FAKE_EXIT_TEST', '3')
        assert h.run(ExampleTest.EXAMPLE) == 'FAILURE'
        assert h.build.stages*.status == ['SUCCESS', 'FAILURE', 'SKIPPED', 'SKIPPED']
        assert h.calls('junit')[0].extra.summary.failCount == 1
        assert fake.argv('push') == null && fake.argv('deploy') == null
        assert new File(h.archiveDir, 'slipway-release.json').exists() // post { always }
    }
}
