import harness.Harness
import harness.Main
import harness.PipelineError
import org.junit.Test

import java.nio.file.Files

/** The harness itself: the declarative interpreter and the executing-mode steps the library relies on. */
class HarnessTest {
    static Harness recording(String branch = 'main') {
        Harness h = Fixture.recording()
        h.setGlobalEnv('BRANCH_NAME', branch)
        return h
    }

    @Test
    void whenBranchUsesAntPatternsAndSkippedStagesAreReported() {
        String jf = '''
            pipeline {
                agent any
                stages {
                    stage('A') { when { branch 'release-*' }; steps { echo 'A ran' } }
                    stage('B') { when { not { branch 'main' } }; steps { echo 'B ran' } }
                    stage('C') { when { anyOf { branch 'main'; expression { env.FORCE == '1' } } }; steps { echo 'C ran' } }
                    stage('D') { when { environment name: 'FORCE', value: '1' }; steps { echo 'D ran' } }
                }
            }'''
        Harness h = recording('release-1.2')
        assert h.run(jf) == 'SUCCESS'
        assert h.build.stages*.status == ['SUCCESS', 'SUCCESS', 'SKIPPED', 'SKIPPED']
        h = recording('main')
        h.setGlobalEnv('FORCE', '1')
        h.run(jf)
        assert h.build.stages*.status == ['SKIPPED', 'SKIPPED', 'SUCCESS', 'SUCCESS']
    }

    @Test
    void aFailedStageSkipsTheRestAndPostConditionsRunByResult() {
        Harness h = recording()
        String result = h.run('''
            pipeline {
                agent any
                environment { GREETING = "hello ${env.BRANCH_NAME}" }
                stages {
                    stage('one') { steps { script { shared = 42 }; echo "${GREETING}" } }
                    stage('two') {
                        steps { error "boom ${shared}" }
                        post { failure { echo 'stage two failed' } }
                    }
                    stage('three') { steps { echo 'never' } }
                }
                post {
                    always { echo 'always' }
                    success { echo 'success' }
                    failure { echo 'failure' }
                    cleanup { echo 'cleanup' }
                }
            }''')
        assert result == 'FAILURE'
        assert h.calls('echo')*.args == [['hello main'], ['stage two failed'], ['always'], ['failure'], ['cleanup']]
        assert h.build.stages*.status == ['SUCCESS', 'FAILURE', 'SKIPPED']
        assert h.logText.contains('ERROR: boom 42')
    }

    @Test
    void unstableIsKeptAndNeverImproved() {
        Harness h = recording()
        assert h.run('''
            pipeline {
                agent any
                stages { stage('s') { steps { unstable 'flaky'; echo 'after' } } }
                post { unstable { echo 'was unstable' } }
            }''') == 'UNSTABLE'
        assert h.calls('echo')*.args == [['after'], ['was unstable']]
    }

    @Test
    void unknownStepsAndOtherLibrariesAreRefused() {
        Harness h = recording()
        assert h.run("node { shh 'typo' }") == 'FAILURE'
        assert h.build.errors[0].message == "No such DSL method 'shh' found among steps known to the slipway test harness"
        try {
            recording().run("@Library('other@1') _\necho 'x'")
            assert false
        } catch (PipelineError e) {
            assert e.message.contains('only the slipway library')
        }
    }

    @Test
    void executingShHonoursReturnStdoutReturnStatusWithEnvAndDir() {
        File ws = Files.createTempDirectory('harness-ws').toFile()
        try {
            Harness h = Harness.executing(Fixture.REPO, ws.path)
            h.out = null
            h.params.WHO = 'param value'
            assert h.run('''
                withEnv(['GREETING=hi there']) {
                    dir('sub') {
                        writeFile file: 'f.txt', text: 'content'
                        assert sh(script: 'printf "%s|%s" "$GREETING" "$(cat f.txt)"', returnStdout: true) == 'hi there|content'
                        assert sh(script: 'exit 7', returnStatus: true) == 7
                        assert fileExists('f.txt') && !fileExists('nope')
                        assert pwd() == "${env.WORKSPACE}/sub"
                    }
                }
                assert sh(script: 'echo "$WHO"', returnStdout: true).trim() == 'param value'
                env.LATER = 'set'
                assert sh(script: 'echo $LATER', returnStdout: true).trim() == 'set'
                sh 'echo to-the-log; false'
            ''') == 'FAILURE'
            assert h.build.errors[0].message == 'script returned exit code 1'
            assert h.logText.contains('to-the-log')
            assert new File(ws, 'sub/f.txt').text == 'content'
        } finally {
            ws.deleteDir()
            new File(ws.path + '@tmp').deleteDir()
        }
    }

    @Test
    void executingSecretsAreMaskedInTheLog() {
        File ws = Files.createTempDirectory('harness-ws').toFile()
        try {
            Harness h = Harness.executing(Fixture.REPO, ws.path)
            h.out = null
            h.credential('tok', [type: 'string', secret: 's3cr3t-value'])
            assert h.run('''
                withCredentials([string(credentialsId: 'tok', variable: 'TOKEN')]) {
                    sh 'echo "token is $TOKEN"'
                }
            ''') == 'SUCCESS'
            assert h.logText.contains('token is ****')
            assert !h.logText.contains('s3cr3t-value')
        } finally {
            ws.deleteDir()
            new File(ws.path + '@tmp').deleteDir()
        }
    }

    @Test
    void secretsAreMaskedOnlyWhileTheirBlockRunsAndSecretFilePathsToo() {
        // As in Jenkins: the console filter belongs to the withCredentials block. A step that
        // prints the binary's output after the block closes prints it unmasked.
        Harness h = recording()
        h.credential('tok', [type: 'string', secret: 's3cr3t-value'])
        h.credential('kh', [type: 'file', fileName: 'known_hosts', content: 'x'])
        h.run('''
            def path
            withCredentials([string(credentialsId: 'tok', variable: 'TOKEN'), file(credentialsId: 'kh', variable: 'KH')]) {
                path = env.KH
                echo "inside ${env.TOKEN} ${path}"
            }
            echo "after ${path}"
        ''')
        assert h.logText.contains('inside **** ****')
        assert h.logText.contains('after /ws/app@tmp/secretFiles/')
        assert h.boundSecrets.isEmpty()
    }

    @Test
    void pipelineRunnerRejectsBadUsage() {
        assert Main.run(['--param', 'novalue', 'Jenkinsfile']) == 2
        assert Main.run([]) == 2
        assert Main.run(['--workspace']) == 2
    }
}
