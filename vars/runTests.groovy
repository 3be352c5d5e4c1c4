import slipway.Params
import slipway.Cli
import slipway.Runner

/**
 * runTests: runs the compose test stack against the images in the manifest (`slipway test`),
 * publishes the JUnit results and archives every service's log even when tests fail, then
 * fails the build (or marks it UNSTABLE with unstableOnFailure: true). Returns
 * [status: 'passed'|'failed', exitCode, results, tests: [total, failed, skipped, passed], summary].
 * Every parameter, with an example: vars/runTests.txt.
 */
def call(Map params = [:]) {
    // Parameters and their defaults. null, [] and false mean "not passed": the binary's own
    // default applies. Each one with a flag is a flag of `slipway test` (src/slipway/Spec.groovy).
    Map defaults = [
            composeFiles             : [],                     // -f (repeatable): the test stack; default docker-compose.test.yml
            services                 : [],                     // --service (repeatable): the services that run the tests; default from the test file
            results                  : 'test-results',         // --results: directory the results and logs are copied into (relative to the workspace)
            resultsPaths             : [],                     // --results-path (repeatable) [SERVICE:]PATH inside the containers; default x-slipway results
            timeout                  : null,                   // --timeout: for the whole run, e.g. '20m'; default 30m
            manifest                 : 'slipway-release.json', // --manifest: the release buildImages wrote
            unstableOnFailure        : false,                  // failing tests mark the build UNSTABLE instead of failing it
            allowEmptyResults        : false,                  // a passing run without JUnit XML is an error unless true
            registryCredentialsId    : null,                   // usernamePassword credential, for private images of test-only services
            dockerConfigCredentialsId: null,                   // or a file credential holding a docker config.json
            tool                     : null,                   // path to a slipway binary; default SLIPWAY_BIN, else the pinned release
    ]
    Runner r = new Runner(this, 'runTests')
    Map p = r.check(defaults, params)
    Map res = r.run(p)
    int status = (int) res.status

    // Publish whatever the run produced before judging it: failures are when results matter.
    // A run that failed may have produced no XML; that must not hide the real error.
    def summary = null
    try {
        summary = junit(testResults: "${p.results}/**/*.xml", allowEmptyResults: p.allowEmptyResults || status != 0)
    } catch (err) {
        // An abort (FlowInterruptedException is an InterruptedException) stays an abort.
        if (status == 0 && !(err instanceof InterruptedException)) {
            error("runTests: the tests passed but no JUnit XML was found under ${p.results}/ (${err.message}); " +
                    "name the result paths with resultsPaths or x-slipway results in the test compose file, or set allowEmptyResults: true")
        }
        throw err
    } finally {
        archiveArtifacts(artifacts: "${p.results}/**", allowEmptyArchive: true)
    }

    Map out = [
            status  : status == 0 ? 'passed' : 'failed',
            exitCode: status,
            results : p.results,
            tests   : [total  : summary?.totalCount ?: 0, failed: summary?.failCount ?: 0,
                       skipped: summary?.skipCount ?: 0, passed: summary?.passCount ?: 0],
            summary : r.readJson("${p.results}/summary.json") ?: [:],
    ]
    // A timed-out (hung) stack is not a red test: it stays FAILURE even with unstableOnFailure.
    if (status == 3 && p.unstableOnFailure && ((Map) out.summary).result != 'timeout') {
        unstable(Cli.failure('runTests', status, (String) res.errorLine))
    } else if (status != 0) {
        r.fail(res)
    }
    return out
}

// A positional argument, like runTests('x'): the named-parameters error, not a MissingMethodException
// (which a sandboxed library turns into a script approval of GroovyObject.invokeMethod).
def call(Object positional) {
    error(Params.positional('runTests', positional))
}
