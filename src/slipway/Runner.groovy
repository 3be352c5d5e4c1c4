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
     * line, stdout: its stdout (for --json commands, else null), runDir, report: the name the
     * --json stdout was archived under (else null)]. What the binary said comes back with the
     * bound secrets masked (Cli.script), since the step repeats it after withCredentials.
     */
    Map run(Map values) {
        String bin = new Binary(steps, step).obtain((String) values.tool)
        String id = Cli.unique()
        String runDir = runDir(id)
        String script = Cli.script(bin: bin, words: Cli.argv(step, values), runDir: runDir,
                dockerConfig: Params.isSet(values.dockerConfigCredentialsId), showStdout: !Spec.json(step),
                mask: Credentials.secretVariables(values))
        List bindings = bindings(values)
        int status
        if (bindings.isEmpty()) {
            status = runScript(script, bin, runDir, values)
        } else {
            steps.withCredentials(bindings) {
                status = runScript(script, bin, runDir, values)
            }
        }
        String tail = steps.fileExists("${runDir}/stderr.tail") ? steps.readFile("${runDir}/stderr.tail") : ''
        String stdout = null
        String report = null
        try {
            if (Spec.json(step) && steps.fileExists("${runDir}/stdout")) {
                stdout = steps.readFile("${runDir}/stdout")
            }
            if (stdout) {
                report = archiveReport(runDir, id, stdout)
            }
        } finally {
            // Raw output copies do not outlive the run (they would pile up in @tmp across builds).
            steps.sh(label: 'slipway: clean up', script: "set +x\nrm -rf ${Shell.quote(runDir)}\n")
        }
        return [status: status, errorLine: Cli.lastError(tail) + Cli.advice(tail, values), stdout: stdout, runDir: runDir, report: report]
    }

    /**
     * Archives the --json report whatever the exit code, under a name of this run's own
     * (slipway-deploy-report-<id>.json): parallel deploys in one directory neither overwrite
     * each other's file nor each other's artifact. The copy is written in the run's directory
     * under <workspace>@tmp, not the workspace (where a branch's stash or archiveArtifacts '**'
     * could sweep it up), and goes with it.
     */
    String archiveReport(String runDir, String id, String stdout) {
        String name = "slipway-${Spec.command(step)}-report-${id}.json".toString()
        steps.dir(runDir) {
            steps.writeFile(file: name, text: stdout)
            steps.archiveArtifacts(artifacts: name, allowEmptyArchive: true)
        }
        return name
    }

    /**
     * Runs the script; on the build's interruption (abort, timeout) it reports what the binary
     * did with it (afterInterrupt) and rethrows: the build stays ABORTED. Inside the credentials'
     * scope, so the repair can reach the servers.
     */
    int runScript(String script, String bin, String runDir, Map values) {
        try {
            return steps.sh(label: label(), script: script, returnStatus: true)
        } catch (Throwable e) {
            if (Cli.interrupted(e)) {
                afterInterrupt(bin, runDir, values)
            }
            throw e
        }
    }

    /**
     * After an interruption the binary may still be cleaning up (rolling back within its grace):
     * wait for its exit file, print its late log, repair hosts it may have left changed and print
     * their status. Never throws: the interruption is what the build reports.
     */
    void afterInterrupt(String bin, String runDir, Map values) {
        String cmd = Spec.command(step)
        Map o = [bin: bin, runDir: runDir, wait: 60]
        if (cmd == 'deploy' || cmd == 'rollback') {
            List<String> target = Cli.targetWords(step, values)
            List<String> repair = ['rollback']
            repair.addAll(target)
            repair.addAll(['--repair', '--lock-wait', '2m'])
            List<String> status = ['status']
            status.addAll(target)
            o.repair = repair
            o.status = status
        }
        try {
            steps.echo("${step}: interrupted; waiting for slipway ${cmd} to finish its cleanup".toString())
            steps.sh(label: 'slipway: after the interruption', script: Cli.afterInterrupt(o), returnStatus: true)
        } catch (Throwable e) {
            steps.echo("${step}: could not report the hosts' state after the interruption: ${e}".toString())
        }
    }

    /** Stops the build with the binary's exit code and last error line. */
    void fail(Map result) {
        steps.error(Cli.failure(step, (int) result.status, (String) result.errorLine))
    }

    /**
     * The end of deployCompose/rollbackCompose (run() archived the --json report): the build
     * description told which outcome it was (4: rolled back, safe; 5: hosts left changed),
     * then the result Map, or the build stopped when failOnError.
     */
    Map outcome(Map values, Map res) {
        int status = (int) res.status
        Object report = Results.parseOrNull((String) res.stdout)
        String message = status == 0 ? '' : Cli.failure(step, status, (String) res.errorLine)
        String old = steps.currentBuild.description
        String line = Results.describe(step, status, report)
        steps.currentBuild.description = old ? "${old}\n${line}".toString() : line
        Map out = Results.outcome(status, report, message)
        out.reportArtifact = res.report
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

    /** A fresh directory per run under <workspace>@tmp (id from Cli.unique()): parallel branches never share one. */
    String runDir(String id) {
        return "${Binary.stateDir(steps)}/slipway/runs/${Spec.command(step)}-${id}".toString()
    }

    String label() {
        return "slipway ${Spec.command(step)}".toString()
    }
}
