import harness.Call
import harness.PipelineError
import org.junit.Test

/** Obtaining the binary: explicit path, verified cache, stash, or a checked download, once per build. */
class BinaryTest {
    static final String DIR = '/ws/app@tmp/slipway/9.9.9/linux-amd64'
    static final String BIN = DIR + '/slipway'

    static String failure(Closure c) {
        try {
            c.call()
        } catch (PipelineError e) {
            return e.message
        }
        assert false: 'expected the step to stop the build'
    }

    @Test
    void downloadedOncePerBuildAndVersionRunOnce() {
        Steps s = new Steps()
        s.run('buildImages', [:])
        s.run('runTests', [:])
        s.run('pushImages', [:])
        s.run('deployCompose', [hosts: 'app1', dir: '/srv/app'])
        assert s.agent.curlCalls == 1
        assert s.agent.versionCalls == 1
        assert s.agent.runs.size() == 4
        assert s.h.scripts().count { it.contains('uname') } == 1 // the platform is asked once per node
        assert s.agent.runs.every { Fixture.argv((String) it.arg('script'))[0] == BIN }
        assert s.h.nodeFs()[BIN] == 'BINARY'
        // The download: pinned URL, into pwd(tmp: true), checked, then stashed for other nodes.
        String curl = s.h.scripts().find { it.contains('curl') }
        assert curl.contains("curl -fsSL --connect-timeout 30 --max-time 600 -o ${DIR}/.stage.000001/slipway_9.9.9_linux_amd64.tar.gz " +
                'https://downloads.example/slipway/v9.9.9/slipway_9.9.9_linux_amd64.tar.gz')
        // Assembled in a staging dir and moved into place with one rename; nothing else is left.
        assert s.agent.stages == 1 && s.agent.installs == 1
        assert !s.h.nodeFs().keySet().any { it.contains('/.stage.') }
        assert s.h.calls('stash').size() == 1
        String name = s.h.calls('stash')[0].args.name
        assert name ==~ /slipway-binary-linux-amd64-[0-9a-f]{8}/
        assert s.h.calls('stash')[0].args == [name: name, includes: 'slipway']
        assert s.h.env().SLIPWAY_STASHED_LINUX_AMD64 == '9.9.9 ' + name
        assert s.h.calls('echo').any { it.arg('value') == "buildImages: slipway 9.9.9 1a2b3c4 linux/amd64 (${BIN}, from the download)" }
    }

    @Test
    void everyUseVerifiesTheCachedCopysChecksum() {
        Steps s = new Steps()
        s.run('buildImages', [:])
        int before = s.h.scripts().count { it.contains('sha256sum') && it.contains("f=${BIN}\n") }
        s.run('pushImages', [:])
        assert s.h.scripts().count { it.contains('sha256sum') && it.contains("f=${BIN}\n") } == before + 1
    }

    @Test
    void aCopyCachedByAnEarlierBuildIsVerifiedAndReusedWithoutDownload() {
        Steps s = new Steps()
        s.h.seed(BIN, 'BINARY')
        s.run('buildImages', [:])
        assert s.agent.curlCalls == 0
        assert s.agent.versionCalls == 1
        assert s.h.calls('echo').any { it.arg('value').toString().endsWith('from the cached copy)') }
    }

    @Test
    void aTamperedCachedCopyIsReplaced() {
        Steps s = new Steps()
        s.h.seed(BIN, 'EVIL')
        s.run('buildImages', [:])
        assert s.agent.curlCalls == 1
        assert s.h.nodeFs()[BIN] == 'BINARY'
        assert s.h.calls('echo').any { it.arg('value').toString().contains("has sha256 ${'f' * 64}, not the pinned ${Fixture.BINARY_SHA}") }
    }

    @Test
    void checksumMismatchOfTheDownloadIsAHardError() {
        Steps s = new Steps()
        s.agent.archive = 'NOT THE RELEASE'
        String m = failure { s.run('buildImages', [:]) }
        assert m == "buildImages: checksum mismatch for https://downloads.example/slipway/v9.9.9/slipway_9.9.9_linux_amd64.tar.gz: " +
                "expected sha256 ${Fixture.ARCHIVE_SHA}, got ${'f' * 64}; refusing to run it (a corrupt download, or not the release this library version pins)"
        assert s.agent.curlCalls == 1 // not retried: a mismatch is not a network hiccup
        assert s.agent.runs.isEmpty()
        assert s.agent.versionCalls == 0
        assert !s.h.nodeFs().keySet().any { it.endsWith('.part') }: 'the bad download is deleted'
        assert !s.h.nodeFs().containsKey(BIN)
    }

    @Test
    void checksumMismatchOfTheExtractedBinaryIsAHardError() {
        Steps s = new Steps()
        s.agent.binary = 'SWAPPED'
        String m = failure { s.run('pushImages', [:]) }
        assert m.startsWith('pushImages: checksum mismatch for the slipway binary in slipway_9.9.9_linux_amd64.tar.gz')
        assert s.agent.runs.isEmpty()
        assert !s.h.nodeFs().containsKey(BIN)
    }

    @Test
    void downloadIsRetriedWithBackoff() {
        Steps s = new Steps()
        s.agent.curlFailures = 2
        s.run('buildImages', [:])
        assert s.agent.curlCalls == 3
        assert s.h.calls('sleep')*.args == [[time: 5, unit: 'SECONDS'], [time: 10, unit: 'SECONDS']]
        assert s.h.calls('echo').count { it.arg('value').toString().contains('failed (curl exit 22, attempt') } == 2
        assert s.agent.runs.size() == 1
    }

    @Test
    void downloadGivesUpAfterThreeAttempts() {
        Steps s = new Steps()
        s.agent.curlFailures = 99
        String m = failure { s.run('buildImages', [:]) }
        assert s.agent.curlCalls == 3
        assert m.startsWith('buildImages: could not download slipway 9.9.9 from https://downloads.example/slipway/v9.9.9/slipway_9.9.9_linux_amd64.tar.gz after 3 attempts')
        assert s.agent.runs.isEmpty()
    }

    @Test
    void aMirrorFromSlipwayDownloadUrlIsStillChecked() {
        Steps s = new Steps()
        s.h.setGlobalEnv('SLIPWAY_DOWNLOAD_URL', 'http://127.0.0.1:8000/{os}/{arch}/{archive}')
        s.run('buildImages', [:])
        assert s.h.scripts().find { it.contains('curl') }.contains(' http://127.0.0.1:8000/linux/amd64/slipway_9.9.9_linux_amd64.tar.gz')
        s = new Steps()
        s.h.setGlobalEnv('SLIPWAY_DOWNLOAD_URL', 'http://127.0.0.1:8000/{archive}')
        s.agent.archive = 'MIRROR CONTENT'
        assert failure { s.run('buildImages', [:]) }.contains('checksum mismatch')
    }

    @Test
    void anotherNodeUnstashesInsteadOfDownloading() {
        Steps s = new Steps()
        s.h.run('''
            node('linux-a') { buildImages() }
            node('linux-b') { pushImages() }
        ''')
        assert s.h.build.result == 'SUCCESS': s.h.logText
        assert s.agent.curlCalls == 1
        assert s.h.calls('unstash').size() == 1
        Call un = s.h.calls('unstash')[0]
        assert un.node == 'linux-b' && un.args == [s.h.calls('stash')[0].args.name] && un.cwd == DIR + '/.stage.000002'
        assert s.h.fs['linux-b'][BIN] == 'BINARY'
        assert s.agent.versionCalls == 2 // once per node
        assert s.h.calls('sh').findAll { it.arg('script').contains('uname') }*.node == ['linux-a', 'linux-b']
        assert s.agent.runs*.node == ['linux-a', 'linux-b']
    }

    @Test
    void explicitToolParameterIsUsedAsIs() {
        Steps s = new Steps()
        s.run('buildImages', [tool: '/opt/slipway/bin/slipway'])
        s.run('pushImages', [tool: '/opt/slipway/bin/slipway'])
        assert s.agent.curlCalls == 0
        assert s.h.calls('libraryResource').isEmpty()
        assert s.agent.versionCalls == 1
        assert s.agent.runs.every { Fixture.argv((String) it.arg('script'))[0] == '/opt/slipway/bin/slipway' }
    }

    @Test
    void slipwayBinEnvironmentVariableIsUsedAsIs() {
        Steps s = new Steps()
        s.h.setGlobalEnv('SLIPWAY_BIN', '/usr/local/bin/slipway')
        s.agent.version = 'slipway dev unknown linux/amd64' // a local build: any version is fine
        s.run('buildImages', [:])
        assert s.agent.curlCalls == 0
        assert s.agent.lastArgv()[0] == '/usr/local/bin/slipway'
    }

    @Test
    void anExplicitBinaryThatDoesNotRunStopsTheBuild() {
        Steps s = new Steps()
        s.agent.versionExit = 127
        s.agent.version = 'sh: 1: /nope/slipway: not found'
        String m = failure { s.run('buildImages', [tool: '/nope/slipway']) }
        assert m == 'buildImages: /nope/slipway (from the tool: parameter) does not run: `slipway version` exited 127: sh: 1: /nope/slipway: not found'
    }

    @Test
    void aDownloadReportingAnotherVersionIsRefused() {
        Steps s = new Steps()
        s.agent.version = 'slipway 1.0.0 abc linux/amd64'
        String m = failure { s.run('buildImages', [:]) }
        assert m == "buildImages: ${BIN} (from the download) reports 'slipway 1.0.0 abc linux/amd64', expected slipway 9.9.9"
    }

    @Test
    void windowsAgentsGetAClearError() {
        Steps s = new Steps()
        s.h.unix = false
        String m = failure { s.run('deployCompose', [hosts: 'app1', dir: '/srv/app']) }
        assert m == 'deployCompose: Windows agents are not supported; run this step on a Linux or macOS agent with sh, curl, git and the docker CLI'
        assert s.h.calls('sh').isEmpty()
    }

    @Test
    void macOsArmIsMappedAndUnpinnedPlatformsAreNamed() {
        Steps s = new Steps()
        s.agent.uname = 'Darwin\narm64\n'
        String m = failure { s.run('buildImages', [:]) } // the fake archive's checksum is linux's
        assert m.contains('slipway_9.9.9_darwin_arm64.tar.gz')
        s = new Steps()
        s.agent.uname = 'Linux\naarch64\n'
        assert failure { s.run('buildImages', [:]) } ==
                "buildImages: the library pins no slipway 9.9.9 binary for linux-arm64 (pinned: linux-amd64, darwin-arm64); give the step tool: '/path/to/slipway' or set SLIPWAY_BIN"
        s = new Steps()
        s.agent.uname = 'FreeBSD\namd64\n'
        assert failure { s.run('buildImages', [:]) } == 'buildImages: agents running FreeBSD are not supported (Linux and macOS are)'
        s = new Steps()
        s.agent.uname = 'Linux\nriscv64\n'
        assert failure { s.run('buildImages', [:]) } == 'buildImages: no slipway binary is built for riscv64 (amd64 and arm64 are)'
    }

    @Test
    void theCommittedPinnedFileCoversTheFourPlatforms() {
        Map p = slipway.Results.pinned(new File(Fixture.REPO, 'resources/slipway/release.json').text)
        assert p.platforms.keySet() == ['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64'] as Set
        p.platforms.each { k, v ->
            assert v.sha256 ==~ /[0-9a-f]{64}/
            assert v.binarySha256 ==~ /[0-9a-f]{64}/
            assert v.archive == "slipway_${p.version}_${k.replace('-', '_')}.tar.gz"
        }
        assert p.url.contains('{archive}')
    }
}
