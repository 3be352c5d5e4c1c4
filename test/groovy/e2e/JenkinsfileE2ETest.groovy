import groovy.json.JsonSlurperClassic
import harness.Harness
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.FixMethodOrder
import org.junit.Test
import org.junit.runners.MethodSorters

import java.nio.file.Files

/**
 * Jenkinsfile.example, run by the harness in EXECUTING mode against the real local engine,
 * registry and SSH target of test/scripts/services.sh, on a git repository of the sample app:
 *   1. main: built, tested (JUnit published), pushed, deployed; the app answers over HTTP;
 *   2. a commit whose test fails: JUnit published, nothing pushed, nothing deployed, build failed.
 * The library is a copy of vars/, src/ and resources/, as Jenkins checks it out; the binary
 * comes through the steps' real download path from a local HTTP server serving what
 * `make release` (test/scripts/release.sh) built, checked against the sha256 it pinned.
 * Runs with `test/groovy/run.sh --e2e`. SLIPWAY_E2E_TARGET picks the target (default: the last).
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
class JenkinsfileE2ETest {
    static final File REPO = new File(System.getenv('SLIPWAY_REPO') ?: '.').canonicalFile
    static final String VERSION = '0.0.0-e2e'
    static Map env
    static Map target
    static File work
    static File lib
    static File ws
    static Process server
    static int port
    static String firstCommit
    static String firstVersion

    static String sh(List<String> cmd, Map<String, String> extraEnv = [:], File dir = REPO) {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir)
        pb.environment().putAll(extraEnv)
        pb.redirectError(ProcessBuilder.Redirect.INHERIT)
        Process p = pb.start()
        p.outputStream.close()
        String out = p.inputStream.getText('UTF-8')
        int rc = p.waitFor()
        assert rc == 0: "${cmd.join(' ')} exited ${rc}:\n${out}"
        return out
    }

    @BeforeClass
    static void setUp() {
        File state = new File(System.getenv('SLIPWAY_TEST_STATE') ?: new File(REPO, '.state').path)
        File envJson = new File(state, 'env.json')
        assert envJson.isFile(): "the end-to-end test needs the test services; run `make services` (test/scripts/services.sh up) first: no ${envJson}"
        env = (Map) new JsonSlurperClassic().parse(envJson)
        String name = System.getenv('SLIPWAY_E2E_TARGET') ?: env.Targets[-1].Name
        target = (Map) env.Targets.find { it.Name == name }
        assert target != null: "no target ${name} in ${envJson}"

        work = Files.createTempDirectory('slipway-e2e').toFile()
        lib = new File(work, 'library')
        lib.mkdirs()
        for (String d : ['vars', 'src', 'resources']) {
            sh(['cp', '-R', new File(REPO, d).path, new File(lib, d).path])
        }
        // `make release` for this machine's platform, pinned into the library copy.
        File dist = new File(work, 'dist')
        String platform = sh(['go', 'env', 'GOOS', 'GOARCH']).readLines().join('/')
        sh(['test/scripts/release.sh'], [VERSION      : VERSION, PLATFORMS: platform, DIST_DIR: dist.path,
                                         RESOURCES_DIR: new File(lib, 'resources/slipway').path])
        startServer(dist)

        ws = new File(work, 'workspace')
        firstCommit = sh(['test/scripts/sampleapp-repo.sh', ws.path]).readLines()[-1].trim()
        firstVersion = new File(ws, 'web/VERSION').text.trim()
    }

    static void startServer(File dir) {
        ProcessBuilder pb = new ProcessBuilder('python3', '-u', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir.path, '0')
        pb.redirectErrorStream(true)
        server = pb.start()
        BufferedReader r = new BufferedReader(new InputStreamReader(server.inputStream, 'UTF-8'))
        String line = r.readLine()
        def m = line =~ /port (\d+)/
        assert m.find(): "python3 -m http.server said: ${line}"
        port = Integer.parseInt(m.group(1))
        Thread.start { while (r.readLine() != null) {} } // drain its access log
    }

    @AfterClass
    static void tearDown() {
        server?.destroy()
        if (target != null && ws != null) {
            // Leave the target as we found it: stop the deployed app, remove its directory.
            String dir = deployDir()
            String remote = "cd '${dir}/current' 2>/dev/null && (docker compose -p sampleapp down -v || docker-compose -p sampleapp down -v); rm -rf '${dir}'"
            new ProcessBuilder(['ssh', '-i', target.KeyFile, '-o', "UserKnownHostsFile=${target.KnownHosts}", '-o', 'BatchMode=yes',
                                '-p', "${target.Port}", "${target.User}@${target.Host}", remote].collect { it.toString() })
                    .redirectErrorStream(true).start().waitFor()
        }
        if (work != null && !System.getenv('SLIPWAY_E2E_KEEP')) {
            work.deleteDir()
        }
    }

    static String deployDir() {
        return "${target.Dir}/jenkins-e2e"
    }

    /** A build of the multibranch job's main branch, as a Jenkins agent would run it. */
    static Harness pipeline(int number, Map<String, String> extraEnv = [:]) {
        Harness h = Harness.executing(lib, ws.path)
        String commit = sh(['git', '-C', ws.path, 'rev-parse', 'HEAD']).trim()
        Map<String, String> buildEnv = [
                BRANCH_NAME             : 'main', GIT_COMMIT: commit, GIT_BRANCH: 'main', JOB_NAME: 'sampleapp/main',
                BUILD_NUMBER            : "${number}", BUILD_TAG: "jenkins-sampleapp-main-${number}",
                BUILD_URL               : "http://jenkins.invalid/job/sampleapp/job/main/${number}/",
                // Where the agent finds the slipway release: the local mirror of `make release`.
                SLIPWAY_DOWNLOAD_URL    : "http://127.0.0.1:${port}/{archive}",
                // The sample app's base images live in the fixture registry.
                SLIPWAY_FIXTURE_REGISTRY: env.FixtureRegistry,
        ]
        buildEnv.putAll(extraEnv)
        buildEnv.each { k, v -> h.setGlobalEnv(k, v.toString()) }
        h.params.REGISTRY = "${env.Registry}/slipway-e2e".toString()
        h.params.DEPLOY_HOSTS = "${target.User}@${target.Host}:${target.Port}".toString()
        h.params.DEPLOY_DIR = deployDir()
        h.credential('registry', [type: 'usernamePassword', username: env.RegistryUser, password: env.RegistryPassword])
        h.credential('deploy-ssh', [type: 'sshUserPrivateKey', username: target.User, privateKeyFile: target.KeyFile, passphrase: ''])
        h.credential('deploy-known-hosts', [type: 'file', fileName: 'known_hosts', path: target.KnownHosts])
        h.credential('shop-env', [type: 'file', fileName: 'shop.env', path: new File(REPO, 'test/fixtures/sampleapp/.env').path])
        return h
    }

    static String runExample(Harness h) {
        return h.run(new File(REPO, 'Jenkinsfile.example').text)
    }

    static String http(String url) {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection()
        c.connectTimeout = 5000
        c.readTimeout = 10000
        int code = c.responseCode
        String body = (code < 400 ? c.inputStream : c.errorStream)?.getText('UTF-8')
        return "${code} ${body?.trim()}".toString()
    }

    /** HTTP status of the registry's manifest for repo:tag (200 pushed, 404 not). */
    static int registryTag(String repo, String tag) {
        String out = sh(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', env.CACert, '-u', "${env.RegistryUser}:${env.RegistryPassword}".toString(),
                         '-H', 'Accept: application/vnd.docker.distribution.manifest.v2+json', "https://${env.Registry}/v2/${repo}/manifests/${tag}".toString()])
        return Integer.parseInt(out.trim())
    }

    static String failureReport(Harness h) {
        List<String> lines = h.logText.readLines()
        return lines.subList(Math.max(0, lines.size() - 80), lines.size()).join('\n')
    }

    @Test
    void a_mainIsBuiltTestedPushedAndDeployedAndAnswers() {
        Harness h = pipeline(1)
        assert runExample(h) == 'SUCCESS': failureReport(h)
        assert h.build.stages*.status == ['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']

        // The binary came through the real download path, checked, once.
        List<String> curls = h.scripts().findAll { it.contains('curl -fsSL') }
        assert curls.size() == 1 && curls[0].contains("http://127.0.0.1:${port}/slipway_${VERSION}_")
        assert h.logText.contains("slipway ${VERSION} ")

        def junit = h.calls('junit')[0].extra.summary
        assert junit.totalCount > 0 && junit.failCount == 0

        Map release = (Map) new JsonSlurperClassic().parse(new File(h.archiveDir, 'slipway-release.json'))
        assert release.commit == firstCommit
        assert new File(h.archiveDir, 'slipway-compose.pinned.yml').text.contains('@sha256:')
        Map web = (Map) release.services.web
        assert web.digest ==~ /sha256:[0-9a-f]{64}/
        String repo = web.image.toString().substring(env.Registry.toString().length() + 1)
        assert registryTag(repo, firstCommit) == 200

        // Deployed: the app answers on the server, with the version this commit baked in.
        assert http("http://${target.Host}:8080/version") == "200 ${firstVersion}"
        assert http("http://${target.Host}:8080/healthz").startsWith('200 ')
        assert h.logText.contains('Pushed [web:sha256:')
        // The change plan, printed before the deploy changed anything.
        assert h.logText =~ /changes: .*web \((new service|new image)/
    }

    @Test
    void b_aFailingTestIsPublishedAndNothingIsPushedOrDeployed() {
        String commit = sh(['test/scripts/sampleapp-repo.sh', ws.path, '2.0.0-e2e']).readLines()[-1].trim()
        assert commit != firstCommit
        Harness h = pipeline(2, [SAMPLEAPP_FAIL_TEST: '1'])
        assert runExample(h) == 'FAILURE': failureReport(h)
        assert h.build.stages*.status == ['SUCCESS', 'FAILURE', 'SKIPPED', 'SKIPPED']
        def junit = h.calls('junit')[0].extra.summary
        assert junit.failCount > 0: 'the failing test was published'
        assert h.calls('pushImages').isEmpty() && h.calls('deployCompose').isEmpty()
        Map release = (Map) new JsonSlurperClassic().parse(new File(h.archiveDir, 'slipway-release.json'))
        String repo = release.services.web.image.toString().substring(env.Registry.toString().length() + 1)
        assert registryTag(repo, commit) == 404: 'nothing pushed'
        assert http("http://${target.Host}:8080/version") == "200 ${firstVersion}": 'the first release still serves'
        assert h.build.errors*.message.any { it.startsWith('runTests: slipway test failed (exit 3') }
    }
}
