import slipway.Params
import slipway.Runner

/**
 * deployCompose: deploys the pushed release (the digest-pinned compose file) to servers over
 * SSH (`slipway deploy`): lock, upload, pull, converge, health gate, switch, prune; rolls back
 * on failure. Returns [exitCode, status, release, hosts (host -> result), report (the binary's --json), reportArtifact,
 * message, rolledBack]; with failOnError: false a failed deploy returns it too (exit 4: rolled back, 5: hosts left changed).
 * Every parameter, with an example: vars/deployCompose.txt.
 */
def call(Map params = [:]) {
    // Parameters and their defaults. null, [] and false mean "not passed": the binary's own
    // default applies. Each one with a flag is a flag of `slipway deploy` (src/slipway/Spec.groovy).
    Map defaults = [
            hosts                    : [],                     // --host (repeatable) [user@]host[:port]; required unless hostsFile
            hostsFile                : null,                   // --hosts-file: one host per line, # comments
            dir                      : null,                   // --dir: the app's directory on the servers; required
            sshCredentialsId         : null,                   // sshUserPrivateKey credential: --identity, its passphrase, and its username for hosts without user@
            identity                 : null,                   // --identity: a key file already on the agent (instead of sshCredentialsId)
            knownHostsCredentialsId  : null,                   // file credential with the servers' known_hosts lines: --known-hosts
            knownHosts               : null,                   // --known-hosts: a known_hosts file on the agent; default ~/.ssh/known_hosts
            hostKey                  : null,                   // --host-key SHA256:...: pin the server's key fingerprint
            acceptNew                : false,                  // --accept-new: trust a host seen for the first time
            jump                     : null,                   // --jump [user@]host[:port]: a bastion
            strategy                 : null,                   // --strategy recreate|rolling|swarm; default recreate
            manifest                 : 'slipway-release.json', // --manifest: the release pushImages completed
            envFileCredentialsId     : null,                   // file credential: the app's runtime .env, --env-file (0600 on the server)
            envFile                  : null,                   // --env-file: a runtime .env on the agent (instead of envFileCredentialsId)
            parallel                 : null,                   // --parallel: hosts at a time; default 1
            canary                   : false,                  // --canary: the first host alone first
            onFailure                : null,                   // --on-failure rollback|stop; default rollback
            healthTimeout            : null,                   // --health-timeout, e.g. '3m'; default 2m
            smokeUrl                 : null,                   // --smoke-url: fetched on each server (its loopback) before switching
            keep                     : null,                   // --keep: releases kept per server; default 5
            lockWait                 : null,                   // --lock-wait: wait this long for another deploy's lock; default 0
            lockTtl                  : null,                   // --lock-ttl: a lock not renewed for this long is stale and taken over; default 5m
            preDeploy                : [],                     // --pre-deploy (repeatable) "SERVICE: COMMAND" run before switching (migrations)
            renameProject            : false,                  // --rename-project: deploy under another project name than the servers run (old one down, volumes kept)
            compose                  : null,                   // --compose auto|library|cli: the servers' Compose, or Compose's own code over SSH; default auto
            dryRun                   : false,                  // --dry-run: print every remote action, change nothing
            failOnError              : true,                   // false: a failed deploy returns its result (exitCode 4 or 5) instead of stopping the build
            registryCredentialsId    : null,                   // usernamePassword credential the servers pull with (never left on them)
            dockerConfigCredentialsId: null,                   // or a file credential holding a docker config.json
            tool                     : null,                   // path to a slipway binary; default SLIPWAY_BIN, else the pinned release
    ]
    Runner r = new Runner(this, 'deployCompose')
    Map p = r.check(defaults, params)
    Map res = r.run(p)
    return r.outcome(p, res)
}

// A positional argument, like deployCompose('x'): the named-parameters error, not a MissingMethodException
// (which a sandboxed library turns into a script approval of GroovyObject.invokeMethod).
def call(Object positional) {
    error(Params.positional('deployCompose', positional))
}
