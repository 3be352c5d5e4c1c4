import slipway.Params
import slipway.Runner

/**
 * rollbackCompose: puts servers back on an earlier release (`slipway rollback`): the previous
 * one, or the commit given as `to`. Made for the "roll back" button of a parameterized job.
 * Returns [exitCode, status, release, hosts (host -> result), report (the binary's --json), reportArtifact,
 * message, rolledBack]; with failOnError: false a failed rollback returns it too.
 * Every parameter, with an example: vars/rollbackCompose.txt.
 */
def call(Map params = [:]) {
    // Parameters and their defaults. null and false mean "not passed": the binary's own
    // default applies. Each one with a flag is a flag of `slipway rollback` (src/slipway/Spec.groovy).
    Map defaults = [
            hosts                    : [],    // --host (repeatable) [user@]host[:port]; required unless hostsFile
            hostsFile                : null,  // --hosts-file: one host per line, # comments
            dir                      : null,  // --dir: the app's directory on the servers; required
            sshCredentialsId         : null,  // sshUserPrivateKey credential: --identity, its passphrase, and its username for hosts without user@
            identity                 : null,  // --identity: a key file already on the agent (instead of sshCredentialsId)
            knownHostsCredentialsId  : null,  // file credential with the servers' known_hosts lines: --known-hosts
            knownHosts               : null,  // --known-hosts: a known_hosts file on the agent; default ~/.ssh/known_hosts
            hostKey                  : null,  // --host-key SHA256:...: pin the server's key fingerprint
            acceptNew                : false, // --accept-new: trust a host seen for the first time
            jump                     : null,  // --jump [user@]host[:port]: a bastion
            to                       : null,  // --to COMMIT: the release to return to; default the previous one
            parallel                 : null,  // --parallel: hosts at a time; default 1
            healthTimeout            : null,  // --health-timeout, e.g. '3m'; default 2m
            smokeUrl                 : null,  // --smoke-url: fetched on each server (its loopback) after the health gate
            lockWait                 : null,  // --lock-wait: wait this long for a deploy's lock; default 0
            lockTtl                  : null,  // --lock-ttl: a lock not renewed for this long is stale and taken over; default 5m
            compose                  : null,  // --compose auto|library|cli: the servers' Compose, or Compose's own code over SSH; default auto
            failOnError              : true,  // false: a failed rollback returns its result (exitCode 4 or 5) instead of stopping the build
            registryCredentialsId    : null,  // usernamePassword credential the servers pull with, if images must be pulled again
            dockerConfigCredentialsId: null,  // or a file credential holding a docker config.json
            tool                     : null,  // path to a slipway binary; default SLIPWAY_BIN, else the pinned release
    ]
    Runner r = new Runner(this, 'rollbackCompose')
    Map p = r.check(defaults, params)
    Map res = r.run(p)
    return r.outcome(p, res)
}

// A positional argument, like rollbackCompose('x'): the named-parameters error, not a MissingMethodException
// (which a sandboxed library turns into a script approval of GroovyObject.invokeMethod).
def call(Object positional) {
    error(Params.positional('rollbackCompose', positional))
}
