import groovy.json.JsonSlurperClassic
import harness.Harness
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test

import java.nio.file.Files

/**
 * One app, one project: buildImages run by the harness in EXECUTING mode with the real slipway
 * binary and the local engine, in the workspaces a multibranch job gives one repository
 * (shop_main, shop_main@2 for a concurrent build, shop_PR-1): the project and the image names
 * come from the repository (its origin remote), not from the workspace folder.
 * Needs only a Docker engine (the app is FROM scratch). Runs with `test/groovy/run.sh --e2e`.
 */
class ProjectIdentityE2ETest {
    static final File REPO = new File(System.getenv('SLIPWAY_REPO') ?: '.').canonicalFile
    static final String REGISTRY = 'registry.example.invalid/team'
    static File work
    static File bin
    static List<String> images = []

    static String sh(List<String> cmd, File dir = REPO) {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir)
        pb.environment().putAll([GIT_AUTHOR_NAME   : 't', GIT_AUTHOR_EMAIL: 't@example.com',
                                 GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
                                 GIT_CONFIG_GLOBAL : '/dev/null', GIT_CONFIG_NOSYSTEM: '1'])
        pb.redirectErrorStream(true)
        Process p = pb.start()
        p.outputStream.close()
        String out = p.inputStream.getText('UTF-8')
        int rc = p.waitFor()
        assert rc == 0: "${cmd.join(' ')} exited ${rc}:\n${out}"
        return out
    }

    @BeforeClass
    static void setUp() {
        work = Files.createTempDirectory('slipway-project-e2e').toFile()
        bin = new File(work, 'slipway')
        sh(['go', 'build', '-o', bin.path, './tools/cmd/slipway'])
        // The app's repository, as the git server has it.
        File src = new File(work, 'src')
        src.mkdirs()
        new File(src, 'compose.yaml').text = 'services:\n  app:\n    build: .\n'
        new File(src, 'Dockerfile').text = 'FROM scratch\nCOPY hello.txt /hello.txt\n'
        new File(src, 'hello.txt').text = 'hello\n'
        sh(['git', 'init', '-q', '-b', 'main', src.path])
        sh(['git', '-C', src.path, 'add', '-A'])
        sh(['git', '-C', src.path, 'commit', '-q', '-m', 'app'])
    }

    @AfterClass
    static void tearDown() {
        images.unique().each { new ProcessBuilder('docker', 'rmi', '-f', it).redirectErrorStream(true).start().waitFor() }
        work?.deleteDir()
    }

    /** A checkout of the app in workspace folder name, as the Git plugin makes it. */
    static File checkout(String name) {
        File ws = new File(work, name)
        sh(['git', 'clone', '-q', new File(work, 'src').path, ws.path])
        sh(['git', '-C', ws.path, 'remote', 'set-url', 'origin', 'https://git.example.invalid/acme/Shop.git'])
        return ws
    }

    static Map build(File ws, String branch) {
        Harness h = Harness.executing(REPO, ws.path)
        h.out = null
        String commit = sh(['git', '-C', ws.path, 'rev-parse', 'HEAD']).trim()
        [BRANCH_NAME: branch, GIT_COMMIT: commit, GIT_BRANCH: branch, BUILD_NUMBER: '7',
         GIT_URL    : 'https://git.example.invalid/acme/Shop.git'].each { k, v -> h.setGlobalEnv(k, v) }
        Map release = (Map) h.callStep('buildImages', [tool: bin.path, registry: REGISTRY])
        Map manifest = (Map) new JsonSlurperClassic().parse(new File(ws, 'slipway-release.json'))
        String image = manifest.services.app.image
        images << "${image}:${commit}".toString()
        assert h.logText.contains('project shop (name from repository name from the origin remote'): h.logText.toString()
        return [project: manifest.project, image: image, release: release]
    }

    @Test
    void workspacesOfOneRepositoryBuildOneProject() {
        Map main = build(checkout('shop_main'), 'main')
        Map concurrent = build(checkout('shop_main@2'), 'main')
        Map pr = build(checkout('shop_PR-1'), 'PR-1')
        assert main.project == 'shop'
        assert main.image == "${REGISTRY}/shop-app".toString()
        assert [concurrent.project, pr.project] == ['shop', 'shop']
        assert [concurrent.image, pr.image] == [main.image, main.image]
    }
}
