package main

// The rows of RELIABILITY.md: each names a fault or hostile input, the test
// that injects it against real parts, and what that test asserts held.
// Test is the name go test prints (subtests with spaces as underscores); the
// row counts that test's passes. Cmd rows run a command instead.

// Row is one line of the table.
type Row struct {
	Section string
	Fault   string   // what was done
	Held    string   // what the test asserts
	Pkg     string   // package of Test
	Test    string   // top-level test, or top-level/subtest
	Cmd     []string // instead of Pkg/Test: a command, held when it exits 0
	Runs    int      // times to run; 0 = the -runs flag
}

const (
	secSSH      = "SSH"
	secHostKeys = "Host keys"
	secRegistry = "Registry"
	secMulti    = "Multi-host"
	secLocks    = "Locks"
	secCancel   = "Cancellation"
	secInput    = "Hostile and malformed input"
	secSecrets  = "Secrets"
)

const (
	pkgSSHX    = "./tools/internal/sshx"
	pkgDeploy  = "./tools/internal/deploy"
	pkgPush    = "./tools/internal/push"
	pkgBuild   = "./tools/internal/build"
	pkgTestrun = "./tools/internal/testrun"
	pkgPlan    = "./tools/internal/plan"
	pkgPinned  = "./tools/internal/pinned"
	pkgCmd     = "./tools/cmd/slipway"
	pkgSecrets = "./test/secrets"
)

var rows = []Row{
	{Section: secSSH, Pkg: pkgSSHX, Test: "TestSilentServerTimesOut",
		Fault: "server accepts TCP, then sends nothing",
		Held:  "the dial fails with a handshake timeout within its bound; cancelling ends a hanging handshake"},
	{Section: secSSH, Pkg: pkgSSHX, Test: "TestFrozenPeerSessionAndUpload",
		Fault: "connection frozen (packets dropped) after the handshake: new session, upload, signal, closed channel",
		Held:  "each times out within its bound with an error naming the host"},
	{Section: secSSH, Pkg: pkgSSHX, Test: "TestCutConnectionFailsRun",
		Fault: "connection cut while a remote command runs",
		Held:  "the command fails promptly with a connection error"},
	{Section: secSSH, Pkg: pkgSSHX, Test: "TestKeepaliveDetectsDeadPeer",
		Fault: "peer dies silently (frozen proxy) on an idle connection",
		Held:  "keepalive declares it dead within interval × count"},
	{Section: secSSH, Pkg: pkgDeploy, Test: "TestIntegrationDeploy/connection_cut_during_upload",
		Fault: "SSH connection cut after 2 MiB of a release upload (real target)",
		Held:  "exit 1, the previous release serving, no release directory for the cut upload, lock released over a new connection"},
	{Section: secSSH, Pkg: pkgDeploy, Test: "TestUploadCutLeavesNoRelease",
		Fault: "upload cut at 100 B, 1 KiB, 2.6 KiB (logic test, fake server)",
		Held:  "no release directory, current unchanged, lock released"},

	{Section: secSSH, Pkg: pkgDeploy, Test: "TestIntegrationInterruptedDeploy/connection_cut_during_converge_rolls_back_over_a_new_connection",
		Fault: "SSH connection cut while compose recreates the app on a real host (slipway alive)",
		Held:  "slipway reconnects and rolls back: exit 4, 2 handshakes, v1 serving, no lock, no .slipway/deploying marker"},
	{Section: secSSH, Pkg: pkgDeploy, Test: "TestIntegrationInterruptedDeploy/connection_cut_during_converge_and_host_unreachable:_the_next_deploy_repairs",
		Fault: "the same cut, and the host stays unreachable for slipway",
		Held:  "exit 5 saying the next deploy repairs it; status shows the interrupted deploy; the next deploy takes the stale lock over, warns, serves 2.0.0, leaves no lock or marker"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestUnknownHostRefused",
		Fault: "host not in known_hosts (strict mode)",
		Held:  "refused before authentication, fingerprint and the line to add printed"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestChangedHostKeyRefused",
		Fault: "server key differs from known_hosts",
		Held:  "refused with HOST KEY CHANGED"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestOneKnownKeyOfThree",
		Fault: "server has ecdsa + ed25519 + rsa keys, known_hosts holds one of them",
		Held:  "connects (the known algorithm is negotiated)"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestSSHRSAEntryUsesRSASHA2",
		Fault: "known_hosts has an ssh-rsa entry",
		Held:  "connects via rsa-sha2 signatures"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestProxyJump",
		Fault: "target reached through a bastion (ProxyJump)",
		Held:  "the bastion's own host key is verified: an unknown bastion is refused, and --host-key pins only the target"},
	{Section: secHostKeys, Pkg: pkgSSHX, Test: "TestAgentAuthNoForwarding",
		Fault: "authentication through ssh-agent",
		Held:  "works; agent forwarding is never requested"},

	// Registry, Multi-host, Locks and Secrets rows: see the whole-command and
	// fault-proxy tests below.
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRetriesThroughAFlakyRegistry",
		Fault: "fault proxy before the real registry answers two manifest PUTs with 503",
		Held:  "the push succeeds on the third attempt (exactly 3 PUTs, 2 retries logged), the registry holds the pushed digest"},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRegistryFault429ThenSuccess",
		Fault: "429 twice, on the manifest PUT (no body) and on the blob upload start (with Retry-After: 1), then success",
		Held:  "exactly 2 faults and 2 slipway retries with backoff (dockerd never retries a 429 and drops Retry-After), 3 pushes, right digest and every blob intact"},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRegistryFault401FailsFast",
		Fault: "401 on a blob upload and on the manifest PUT",
		Held:  "one request, one push, exit 1, no retry; names image, registry, user and credential source; no password printed"},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRegistryFaultResetMidBlob",
		Fault: "TCP reset after 256 KiB of a 1 MiB layer upload",
		Held:  "dockerd retries on a fresh upload session; one slipway push; the stored layer is whole and correct"},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRegistryFaultErrorDetailFailsThePush",
		Fault: "manifest PUT answered 400 MANIFEST_INVALID (an errorDetail in the engine's push stream)",
		Held:  "the push fails at once, exit 1, naming image, registry and the registry's text; not retried"},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestRegistryFault503EveryTimeGivesUp",
		Fault: "503 on every manifest PUT",
		Held:  "exactly 4 attempts, then exit 1 with \"gave up after 4 attempts\""},
	{Section: secRegistry, Pkg: pkgPush, Test: "TestWrongPasswordFailsFastNamingTheRegistry",
		Fault: "wrong registry password",
		Held:  "fails at once (no retries), exit 1, naming the registry, the user and where the credentials came from"},

	{Section: secMulti, Pkg: pkgDeploy, Test: "TestIntegrationMultiHost/broken_middle_host_stops_the_rollout_and_rolls_back_the_first",
		Fault: "3 real hosts, rolling, one at a time; the release's web container exits on the second; every host's app polled every 100 ms throughout",
		Held:  "stop rule: exit 4, the third host untouched; no sample found a host without a healthy version (old or new); the first host rolled back; every host ends on 1.0.0 and current names it"},

	{Section: secLocks, Pkg: pkgDeploy, Test: "TestLock",
		Fault: "a deploy finds another's lock; then a lock older than the TTL; then slipway unlock (logic test)",
		Held:  "waits --lock-wait, fails naming owner, pid, time and build; the stale lock is taken over with a warning; unlock says whose lock it removed"},

	{Section: secLocks, Pkg: pkgCmd, Test: "TestConcurrentDeploysOneHost",
		Fault: "20 `slipway deploy` processes of one app to one real host at once (half --lock-wait 8m, half 0s)",
		Held:  "each exits 0, or 1 with \"lock held by\"; every waiting one succeeds; a /proc sampler sees no compose up start before the previous release switched current, current switches in converge order, the last release serves; no lock or process left"},
	{Section: secLocks, Pkg: pkgCmd, Test: "TestKilledHolderLockTakenOverAfterTTL",
		Fault: "a deploy holding the lock (waiting on its health gate) killed with -9; a second deploy with --lock-ttl 4s",
		Held:  "the second deploy takes the dead holder's lock over at once (its origin proves it gone) and repairs the interrupted deploy, succeeds and serves; the killed deploy's release removed; no lock or process left"},

	{Section: secLocks, Pkg: pkgDeploy, Test: "TestIntegrationInterruptedDeploy/killed_holder:_lock_and_marker_taken_over_after_the_TTL",
		Fault: "a lock and converge marker left by a vanished connection on a real host",
		Held:  "not taken over before the TTL; then taken over, the host repaired, v1 serving"},
	{Section: secLocks, Pkg: pkgDeploy, Test: "TestIntegrationInterruptedDeploy/lock_renewed_over_SSH_outlives_its_TTL,_then_is_taken_over_once_renewal_stops",
		Fault: "a deploy holds its lock for more than twice its TTL (3 s), renewing over real SSH",
		Held:  "nobody takes it over while it is renewed; taken over once renewal stops, and the old holder sees it as lost"},
	{Section: secLocks, Pkg: pkgDeploy, Test: "TestLockLostBeforeConvergeChangesNothing",
		Fault: "the lock is taken over by another deploy before this one converges (logic test)",
		Held:  "exit 1, nothing changed, its upload removed, the other deploy's lock untouched"},
	{Section: secLocks, Pkg: pkgDeploy, Test: "TestInterruptedFreshReleaseIsRemoved",
		Fault: "an interrupted deploy left its uploaded release behind (logic test)",
		Held:  "the repairing deploy removes that release (never served), keeps one that existed before"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestSIGTERMDuringBuild",
		Fault: "SIGTERM to `slipway build` while a RUN step sleeps",
		Held:  "exit 130, no manifest written, the build container gone"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestSIGTERMDuringPush",
		Fault: "SIGTERM to `slipway push` 1 s into pushing a 150 MB layer",
		Held:  "exit 130 at once, no pinned file and no digest recorded, the engine stops pushing (no manifest appears); the next push succeeds with the registry's digest"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestSIGTERMDuringDeploy",
		Fault: "SIGTERM to `slipway deploy` while v2 waits on its health gate (real host)",
		Held:  "exit 130, rolled back: v1 serves and is current, no lock, no process of the deploy left on the host"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/recreate_v1_shell_first",
		Fault: "Jenkins abort of the steps' script during a recreate deploy (Compose v1) in its health gate: SIGTERM to shell first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/recreate_v1_slipway_first",
		Fault: "Jenkins abort of the steps' script during a recreate deploy (Compose v1) in its health gate: SIGTERM to slipway first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/rolling_v1_shell_first",
		Fault: "Jenkins abort of the steps' script during a rolling deploy (Compose v1) in its health gate: SIGTERM to shell first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/rolling_v1_slipway_first",
		Fault: "Jenkins abort of the steps' script during a rolling deploy (Compose v1) in its health gate: SIGTERM to slipway first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/recreate_v2_shell_first",
		Fault: "Jenkins abort of the steps' script during a recreate deploy (Compose v2) in its health gate: SIGTERM to shell first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/recreate_v2_slipway_first",
		Fault: "Jenkins abort of the steps' script during a recreate deploy (Compose v2) in its health gate: SIGTERM to slipway first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/rolling_v2_shell_first",
		Fault: "Jenkins abort of the steps' script during a rolling deploy (Compose v2) in its health gate: SIGTERM to shell first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/rolling_v2_slipway_first",
		Fault: "Jenkins abort of the steps' script during a rolling deploy (Compose v2) in its health gate: SIGTERM to slipway first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestJenkinsAbortDuringDeploy/recreate_v1_tee_first",
		Fault: "Jenkins abort of the steps' script during a recreate deploy (Compose v1) in its health gate: SIGTERM to tee first, then the other processes, 5 s apart; tee ignores TERM",
		Held:  "exit 130/4 (rolled back within the 4 s grace) or 5/none then the step's rollback --repair: the release current names serves, no lock, no marker, status exit 0"},
	{Section: secCancel, Pkg: pkgCmd, Test: "TestDeadPipeNeitherKillsNorLosesTheLog",
		Fault: "stdout and stderr on a pipe whose reader is gone (a terminated tee)",
		Held:  "no death by SIGPIPE: the command's own exit code, the whole log in SLIPWAY_LOG_FILE, the code in SLIPWAY_EXIT_FILE"},
	{Section: secCancel, Pkg: pkgDeploy, Test: "TestRepairAfterAbort",
		Fault: "an aborted deploy's fresh upload, marker and young lock left by a dead process of this machine (logic test)",
		Held:  "status exit 5 (INTERRUPTED, lock left); rollback --repair takes the lock over at once, current serves, the upload removed; status exit 0"},
	{Section: secCancel, Pkg: pkgDeploy, Test: "TestInterruptOutOfGraceThenRepair",
		Fault: "SIGTERM whose grace is used up before the rollback can start (logic test)",
		Held:  "exit 5 with the marker left; once the process is gone, rollback --repair restores the previous release, removes the upload, frees the lock"},
	{Section: secLocks, Pkg: "./tools/internal/owner", Test: "TestZombieAndGoneChild",
		Fault: "the lock's owner exited but is not reaped (a PID 1 that does not reap), or is gone",
		Held:  "judged dead in both states; a live process and another boot's origin are not"},
	{Section: secCancel, Pkg: pkgBuild, Test: "TestRealBuildCancelStopsTheBuild",
		Fault: "cancel while a RUN step executes (real engine)",
		Held:  "the build stops promptly, cancelled error, no build container left running"},
	{Section: secCancel, Pkg: pkgTestrun, Test: "TestAbort",
		Fault: "SIGTERM to `slipway test` while the test stack runs",
		Held:  "exit 130, the test stack torn down (no containers, networks or volumes of the project left)"},
	{Section: secCancel, Pkg: pkgDeploy, Test: "TestCancelRollsBackAndReleasesTheLock",
		Fault: "cancel while the new release waits for its health gate (logic test)",
		Held:  "exit 130, the previous release running and current, the lock released"},

	{Section: secInput, Pkg: pkgPlan, Test: "TestHostileCompose",
		Fault: "compose file over 4 MiB, billion-laughs alias bombs, unknown top-level key, service names that are no image name",
		Held:  "exit 2 before anything else runs, naming the compose file and the problem"},
	{Section: secInput, Pkg: pkgPlan, Test: "TestOversizeEnvFiles",
		Fault: "env files over 1 MiB: --env-file, .env, env_file: in its three forms",
		Held:  "exit 2 naming the file (and service); a file at the limit loads"},
	{Section: secInput, Pkg: pkgPinned, Test: "TestReferencedFilesRefusesEscapes",
		Fault: "bind mounts, env_file, configs and secrets pointing outside the project, directly or through symlinks",
		Held:  "refused for upload with the service, field and path named"},
	{Section: secInput, Cmd: []string{"test/scripts/fuzz.sh", "10s"}, Runs: 1,
		Fault: "every fuzz target (compose loading and planning, tags, branch names, hosts, remote paths, manifest, release listing, quoting) for 10 s",
		Held:  "no panic, no hang; every rejection an error"},
	{Section: secInput, Cmd: []string{"test/groovy/run.sh", "QuotingTest"},
		Fault: "Groovy steps' shell quoting: 400 random strings and a list of hostile ones (quotes, $, backticks, newlines) through sh",
		Held:  "each reaches the process unchanged; the canary command never executes"},

	{Section: secSecrets, Pkg: pkgSecrets, Test: "TestSecretsPipelineLeaksNothing",
		Fault: "build --pull, test, push, deploy, dry run, status, a wrong-password push and a wrong-passphrase deploy, with a registry password, SSH key passphrase, --env-file app secret and build arg each holding $, %, quotes, backslash, spaces, a newline, $(id) and a backtick",
		Held:  "no secret, raw or JSON/URL/base64/hex-encoded, in any log (commands, registry, dockerds, sshd), in the argv of any process (sampled every 25 ms), in any agent file outside the test's credential files, or in any server file but the release's .env (mode 0600); the secrets were used (registry login seen, app got its secret byte for byte)"},
	{Section: secSecrets, Pkg: pkgSecrets, Test: "TestSecretsJenkinsPipelineLeaksNothing",
		Fault: "the same through the Jenkins steps (buildImages, runTests, pushImages, deployCompose) with every credential ID, in the pipeline harness",
		Held:  "as above, also over the pipeline log, the steps' raw output and the workspace@tmp; the agent JVM's environment holds no secret"},
	{Section: secSecrets, Pkg: pkgDeploy, Test: "TestIntegrationDeploy/first_deploy",
		Fault: "argv of every process on the target sampled during a real deploy",
		Held:  "the registry credentials (raw and base64) never in argv nor in any file left on the server; .env mode 0600"},
}
