import harness.Call
import org.junit.Test
import slipway.Cli

/**
 * An aborted or timed-out build (Jenkins interrupts the running `sh` with a
 * FlowInterruptedException, an InterruptedException): the step waits for the binary's own exit
 * code, prints its late log, repairs hosts a deploy or rollback may have left changed, prints
 * their status, and rethrows, so the build stays ABORTED.
 */
class AbortTest {
    /** A step whose binary run is interrupted; the binary's exit file then says exitCode. */
    static Map abort(String step, Map args, String exitCode) {
        Steps s = new Steps()
        s.h.onSh('>"$run/stdout"') { Call c ->
            s.agent.runs.add(c)
            String run = Fixture.field((String) c.arg('script'), 'run')
            if (exitCode != null) {
                s.h.seed(run + '/exit', exitCode + '\n')
            }
            throw new InterruptedException('aborted by the user')
        }
        Throwable thrown = null
        try {
            s.run(step, args)
        } catch (Throwable e) {
            thrown = e
        }
        List<Call> after = s.h.calls('sh').findAll { ((String) it.arg('script')).contains('$run/exit') && !((String) it.arg('script')).contains('>"$run/stdout"') }
        return [steps: s, thrown: thrown, after: after]
    }

    static Throwable root(Throwable e) {
        while (e != null && !(e instanceof InterruptedException) && e.cause != null && e.cause != e) {
            e = e.cause
        }
        return e
    }

    @Test
    void anAbortedDeployWaitsRepairsReportsAndStaysAborted() {
        Map r = abort('deployCompose', [hosts: ['app1'], dir: '/srv/shop', sshCredentialsId: 'deploy-ssh', strategy: 'rolling'], '5')
        assert root((Throwable) r.thrown) instanceof InterruptedException: "the interruption must be rethrown, got ${r.thrown}"
        assert r.after.size() == 1
        String script = (String) r.after[0].arg('script')
        assert script.contains('while [ ! -s "$run/exit" ] && [ "$i" -lt 60 ]')
        assert script.contains('tail -c +$((n + 1)) "$run/log"')
        assert script =~ /(?m)^  0\|1\|2\) ;;$/
        String host = '"${SLIPWAY_SSH_USER:+$SLIPWAY_SSH_USER@}"app1'
        assert script.contains("slipway rollback --host ${host} --dir /srv/shop --identity \"\$SLIPWAY_SSH_KEY_FILE\" --repair --lock-wait 2m ;;".toString()): script
        assert script.contains("slipway status --host ${host} --dir /srv/shop --identity \"\$SLIPWAY_SSH_KEY_FILE\"\n".toString())
        assert !script.contains('--strategy') && !script.contains('--json')
        // The repair runs inside the credentials' scope, where the SSH key is bound.
        Steps s = (Steps) r.steps
        assert s.h.calls('withCredentials').size() == 1
        assert s.h.calls('echo').any { it.args[0].toString().contains('deployCompose: interrupted; waiting for slipway deploy') }
    }

    @Test
    void anAbortedRollbackRepairsToo() {
        Map r = abort('rollbackCompose', [hosts: ['app1'], dir: 'app'], null)
        assert root((Throwable) r.thrown) instanceof InterruptedException
        String script = (String) r.after[0].arg('script')
        assert script.contains("rollback --host 'app1' --dir app --repair --lock-wait 2m") || script.contains('rollback --host app1 --dir app --repair --lock-wait 2m')
        assert script.contains('status --host')
    }

    @Test
    void anAbortedPushOnlyWaitsAndPrintsTheLateLog() {
        Map r = abort('pushImages', [:], '130')
        assert root((Throwable) r.thrown) instanceof InterruptedException
        String script = (String) r.after[0].arg('script')
        assert script.contains('"$run/log"') && !script.contains('--repair') && !script.contains(' status ')
    }

    @Test
    void aFailureThatIsNoInterruptionIsNotTreatedAsOne() {
        Steps s = new Steps()
        s.h.onSh('>"$run/stdout"') { Call c -> throw new IllegalStateException('agent went away') }
        try {
            s.run('deployCompose', [hosts: ['app1'], dir: 'app'])
            assert false: 'expected the failure to propagate'
        } catch (Throwable e) {
            assert !(root(e) instanceof InterruptedException)
        }
        assert !s.h.calls('sh').any { ((String) it.arg('script')).contains('--repair') }
    }

    @Test
    void theScriptKeepsTheLogAndTheExitCodeAndTeeIgnoresTerm() {
        String script = Cli.script(bin: '/b/slipway', words: ['deploy'], runDir: '/r', dockerConfig: false, showStdout: true)
        assert script.contains('SLIPWAY_LOG_FILE="$run/log"; SLIPWAY_EXIT_FILE="$run/exit"; SLIPWAY_CANCEL_GRACE="${SLIPWAY_CANCEL_GRACE:-4s}"')
        assert script.contains('export SLIPWAY_LOG_FILE SLIPWAY_EXIT_FILE SLIPWAY_CANCEL_GRACE')
        assert script.contains("2>&1 | { trap '' TERM; exec tee \"\$run/stderr\"; }")
        assert Cli.interrupted(new InterruptedException('x'))
        assert !Cli.interrupted(new RuntimeException('x'))
    }
}
