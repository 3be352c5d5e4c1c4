import slipway.Params
import slipway.Results
import slipway.Runner

/**
 * buildImages: builds every compose service that has a build: section, tags the images from
 * the git commit, and writes the release manifest (`slipway build`). Returns the release:
 * [project, commit, shortCommit, branch, dirty, manifest, images, tags, services].
 * Every parameter, with an example: vars/buildImages.txt.
 */
def call(Map params = [:]) {
    // Parameters and their defaults. null, [] and false mean "not passed": the binary's own
    // default applies. Each one is a flag of `slipway build` (src/slipway/Spec.groovy).
    Map defaults = [
            composeFiles             : [],                     // -f (repeatable); default: compose.yaml etc. or COMPOSE_FILE, as docker compose finds them
            projectName              : null,                   // -p; default: COMPOSE_PROJECT_NAME, name:, the repository's name (origin, GIT_URL) at the checkout's root, else the directory's name
            projectDirectory         : null,                   // --project-directory; default: the first compose file's directory
            envFiles                 : [],                     // --env-file (repeatable): values for ${VAR} in the compose files; default .env
            profiles                 : [],                     // --profile (repeatable)
            registry                 : null,                   // --registry: repository prefix for services without image:
            tags                     : [],                     // --tag (repeatable): templates over .Commit .ShortCommit .Branch .BuildNumber; default {{.Commit}} (+ latest on the default branch)
            allowDirty               : false,                  // --allow-dirty: build uncommitted changes; every tag gets -dirty
            pull                     : false,                  // --pull: pull newer base images first
            parallel                 : null,                   // --parallel: builds at a time; default 2
            services                 : [],                     // --service (repeatable): only these; default every service with build:
            manifest                 : 'slipway-release.json', // --manifest: where the release manifest is written
            builder                  : null,                   // --builder: buildkit (default), classic, tcp://HOST:PORT or unix:///PATH of a buildkitd
            labelRevision            : false,                  // --label-revision: stamp the commit as org.opencontainers.image.revision (new images every commit)
            registryCredentialsId    : null,                   // usernamePassword credential, for private base images
            dockerConfigCredentialsId: null,                   // or a file credential holding a docker config.json
            tool                     : null,                   // path to a slipway binary; default SLIPWAY_BIN, else the pinned release
    ]
    Runner r = new Runner(this, 'buildImages')
    Map p = r.check(defaults, params)
    Map res = r.run(p)
    if (res.status != 0) {
        r.fail(res)
    }
    Object manifest = r.readJson((String) p.manifest)
    if (manifest == null) {
        error("buildImages: slipway build succeeded but no manifest is at ${p.manifest}")
    }
    return Results.release(manifest, (String) p.manifest)
}

// A positional argument, like buildImages('x'): the named-parameters error, not a MissingMethodException
// (which a sandboxed library turns into a script approval of GroovyObject.invokeMethod).
def call(Object positional) {
    error(Params.positional('buildImages', positional))
}
