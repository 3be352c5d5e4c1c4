package harness

/** `currentBuild`: the run's result (null while running and nothing went wrong). */
class Build {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    String result
    int number = 1
    String displayName = '#1'
    String description
    List<Map> stages = []      // [name:, status: SUCCESS|FAILURE|UNSTABLE|SKIPPED, reason:]
    List<Throwable> errors = []

    String getCurrentResult() {
        return result ?: 'SUCCESS'
    }

    /** Sets the result unless it is already worse (a result never improves). */
    void setResult(String r) {
        if (result == null || ORDER.indexOf(r) > ORDER.indexOf(result)) {
            result = r
        }
    }

    boolean resultIsWorseOrEqualTo(String other) {
        return ORDER.indexOf(getCurrentResult()) >= ORDER.indexOf(other)
    }

    boolean resultIsBetterOrEqualTo(String other) {
        return ORDER.indexOf(getCurrentResult()) <= ORDER.indexOf(other)
    }
}
