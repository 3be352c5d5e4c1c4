package harness

/** What error(), a failing sh, or a missing credential throw: Jenkins' AbortException. */
class PipelineError extends RuntimeException {
    PipelineError(String message) {
        super(message)
    }
}
