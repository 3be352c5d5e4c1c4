package harness

/** What `junit` returns (hudson.tasks.junit.TestResultSummary). */
class TestSummary implements Serializable {
    int totalCount
    int failCount
    int skipCount

    int getPassCount() {
        return totalCount - failCount - skipCount
    }

    String toString() {
        return "Tests: ${totalCount}, failed: ${failCount}, skipped: ${skipCount}, passed: ${passCount}"
    }
}
