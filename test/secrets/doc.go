// Package secrets holds the end-to-end secret-leak test of issue 8: the whole
// pipeline (build, test, push, deploy) runs against the real test services with
// hostile secret values, and every log, sampled process argument list and file
// left on the agent and the server is searched for them in their common
// encodings. The package has no code besides its tests.
package secrets
