package slipway

/**
 * What every step does around the binary: check the parameters, obtain the binary, bind the
 * credentials, run the command with `sh`, and report the outcome. Steps stay a page long.
 * CPS code: plain loops, no closures handed to collection methods; pure work is @NonCPS in
 * Params, Cli, Credentials and Results.
 */
class Runner implements Serializable {
    private static final long serialVersionUID = 1L

    final def steps
    final String step

    Runner(def steps, String step) {
        this.steps = steps
        this.step = step
    }

    /** The caller's parameters checked and merged over defaults; stops the build on bad input. */
    Map check(Map defaults, Object given) {
        Map r = Params.check(step, defaults, given)
        if (r.error) {
            steps.error((String) r.error)
        }
        return (Map) r.values
    }

    /**
     * Runs the step's command. Returns [status: exit code, errorLine: the binary's last error
     * line, stdout: its stdout (for --json commands, else null), runDir].
     */
    Map run(Map values) {
        String bin = new Binary(steps, step).obtain((String) values.tool)
        String runDir = nextRunDir()
        String script = Cli.script(bin: bin, words: Cli.argv(step, values), runDir: runDir,
                dockerConfig: Params.isSet(values.dockerConfigCredentialsId), showStdout: !Spec.json(step))
        List bindings = bindings(values)
        int status
        if (bindings.isEmpty()) {
            status = steps.sh(label: label(), script: script, returnStatus: true)
        } else {
            steps.withCredentials(bindings) {
                status = steps.sh(label: label(), script: script, returnStatus: true)
            }
        }
        String tail = steps.fileExists("${runDir}/stderr.tail") ? steps.readFile("${runDir}/stderr.tail") : ''
        String stdout = null
        if (Spec.json(step) && steps.fileExists("${runDir}/stdout")) {
            stdout = steps.readFile("${runDir}/stdout")
        }
        // Raw output copies do not outlive the run (they would pile up in @tmp across builds).
        steps.sh(label: 'slipway: clean up', script: "set +x\nrm -rf ${Shell.quote(runDir)}\n")
        return [status: status, errorLine: Cli.lastError(tail) + Cli.advice(tail, values), stdout: stdout, runDir: runDir]
    }

    /** Stops the build with the binary's exit code and last error line. */
    void fail(Map result) {
        steps.error(Cli.failure(step, (int) result.status, (String) result.errorLine))
    }

    /**
     * The end of deployCompose/rollbackCompose: the --json report archived whatever the exit
     * code, the build description told which outcome it was (4: rolled back, safe; 5: hosts
     * left changed), then the result Map, or the build stopped when failOnError.
     */
    Map outcome(Map values, Map res) {
        int status = (int) res.status
        Object report = Results.parseOrNull((String) res.stdout)
        if (res.stdout) {
            String file = "slipway-${Spec.command(step)}-report.json"
            steps.writeFile(file: file, text: (String) res.stdout)
            steps.archiveArtifacts(artifacts: file, allowEmptyArchive: true)
        }
        String message = status == 0 ? '' : Cli.failure(step, status, (String) res.errorLine)
        String old = steps.currentBuild.description
        String line = Results.describe(step, status, report)
        steps.currentBuild.description = old ? "${old}\n${line}".toString() : line
        Map out = Results.outcome(status, report, message)
        if (status != 0) {
            if (values.failOnError) {
                steps.error(message)
            }
            steps.echo(message)
        }
        return out
    }

    /** The parsed JSON file at path (relative to the current directory), or null when absent. */
    Object readJson(String path) {
        if (!steps.fileExists(path)) {
            return null
        }
        return Results.parse(steps.readFile(path))
    }

    List bindings(Map values) {
        List out = []
        List wanted = Credentials.bindings(values)
        for (int i = 0; i < wanted.size(); i++) {
            Map b = (Map) wanted[i]
            switch (b.kind) {
                case 'usernamePassword':
                    out.add(steps.usernamePassword((Map) b.args))
                    break
                case 'sshUserPrivateKey':
                    out.add(steps.sshUserPrivateKey((Map) b.args))
                    break
                default:
                    out.add(steps.file((Map) b.args))
            }
        }
        return out
    }

    /** A fresh directory per run under <workspace>@tmp: unique, so parallel branches never share one. */
    String nextRunDir() {
        return "${Binary.stateDir(steps)}/slipway/runs/${Spec.command(step)}-${Cli.unique()}".toString()
    }

    String label() {
        return "slipway ${Spec.command(step)}".toString()
    }
}
