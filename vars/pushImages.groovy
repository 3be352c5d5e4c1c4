import slipway.Params
import slipway.Results
import slipway.Runner

/**
 * pushImages: pushes every tag of every built image, records the digests in the manifest and
 * writes the digest-pinned compose file (`slipway push`); archives both. Returns the release:
 * [images (service -> repo@sha256:...), digests, tags, services, pinned, manifest, commit...].
 * Every parameter, with an example: vars/pushImages.txt.
 */
def call(Map params = [:]) {
    // Parameters and their defaults. null means "not passed": the binary's own default
    // applies. Each one with a flag is a flag of `slipway push` (src/slipway/Spec.groovy).
    Map defaults = [
            manifest                 : 'slipway-release.json',       // --manifest: the release buildImages wrote; digests are added to it
            parallel                 : null,                         // --parallel: pushes at a time; default 4
            pinned                   : 'slipway-compose.pinned.yml', // --pinned: where the digest-pinned compose file is written
            registryCredentialsId    : null,                         // usernamePassword credential for the registry
            dockerConfigCredentialsId: null,                         // or a file credential holding a docker config.json
            tool                     : null,                         // path to a slipway binary; default SLIPWAY_BIN, else the pinned release
    ]
    Runner r = new Runner(this, 'pushImages')
    Map p = r.check(defaults, params)
    Map res = r.run(p)
    if (res.status != 0) {
        r.fail(res)
    }
    Object manifest = r.readJson((String) p.manifest)
    if (manifest == null) {
        error("pushImages: slipway push succeeded but no manifest is at ${p.manifest}")
    }
    Map release = Results.release(manifest, (String) p.manifest)
    release.pinned = p.pinned
    archiveArtifacts(artifacts: "${p.manifest},${p.pinned}", fingerprint: true)
    return release
}

// A positional argument, like pushImages('x'): the named-parameters error, not a MissingMethodException
// (which a sandboxed library turns into a script approval of GroovyObject.invokeMethod).
def call(Object positional) {
    error(Params.positional('pushImages', positional))
}
