import groovy.json.JsonOutput
import harness.Call
import harness.Harness
import harness.ShellWords

/** Runs steps in recording mode against a FakeAgent whose binary "writes" what each command writes. */
class Steps {
    final Harness h
    final FakeAgent agent

    Steps(Harness h = Fixture.recording()) {
        this.h = h
        this.agent = new FakeAgent(h)
        agent.onRun = { Call c -> writeOutputs(c) }
    }

    /** What the real binary leaves behind: the manifest, JUnit XML, the --json report. */
    void writeOutputs(Call c) {
        List<String> w = Fixture.argv((String) c.arg('script'))
        String cmd = w[1]
        String manifest = value(w, '--manifest') ?: 'slipway-release.json'
        if (cmd == 'build') {
            h.seed(manifest, JsonOutput.toJson(Fixture.manifest()))
        } else if (cmd == 'push') {
            Map m = Fixture.manifest()
            m.services.api.digest = 'sha256:' + 'd' * 64
            m.pinnedCompose = value(w, '--pinned')
            h.seed(manifest, JsonOutput.toJson(m))
            h.seed(value(w, '--pinned'), 'services: {}\n')
        } else if (cmd == 'test') {
            String results = value(w, '--results')
            h.seed("${results}/tests/junit.xml", '<testsuite><testcase name="ok"/></testsuite>')
            h.seed("${results}/summary.json", '{"services":{"tests":{"exitCode":0}}}')
            h.seed("${results}/logs/web.log", 'web log\n')
        }
        if (w.contains('--json')) {
            String run = Fixture.field((String) c.arg('script'), 'run')
            h.seed(run + '/stdout', agent.runStdout ?: '{"hosts":[{"host":"app1","status":"deployed","release":"' + Fixture.COMMIT + '"}]}')
        }
    }

    static String value(List<String> w, String flag) {
        int i = w.indexOf(flag)
        return i >= 0 ? w[i + 1] : null
    }

    Object run(String step, Map args) {
        return h.callStep(step, args)
    }

    /** The argv (binary path first) of the one binary run the step made. */
    List<String> argv(String step, Map args) {
        run(step, args)
        return agent.lastArgv()
    }

    /** The binary's command line exactly as it stands in the script. */
    String commandLine() {
        String s = (String) agent.runs[-1].arg('script')
        String line = s.readLines().find { it.startsWith('{ ') }
        return line.substring(2, line.indexOf(' >"$run/stdout"'))
    }

    static List<String> expand(String commandLine, Map env) {
        return ShellWords.split(commandLine, env)
    }
}
