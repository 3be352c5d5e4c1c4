package harness

import groovy.json.JsonSlurperClassic

/**
 * Runs a Jenkinsfile with the harness in EXECUTING mode, outside Jenkins: the pipeline runner
 * behind test/groovy/pipeline.sh (used by the end-to-end test's setup and `make demo`).
 * Exit code: 0 SUCCESS, 1 FAILURE or ABORTED, 3 UNSTABLE, 2 bad usage.
 */
class Main {
    static final String USAGE = '''\
usage: test/groovy/pipeline.sh [options] JENKINSFILE
  --workspace DIR       the job's workspace, e.g. a checkout of the app (default: .)
  --library DIR         the slipway library checkout: vars/, src/, resources/ (default: the repository)
  --credentials FILE    JSON object, id -> credential:
                          {"registry":   {"type": "usernamePassword", "username": "u", "password": "p"},
                           "deploy-ssh": {"type": "sshUserPrivateKey", "username": "deploy", "privateKeyFile": "/k", "passphrase": ""},
                           "shop-env":   {"type": "file", "path": "/x/.env"}   (or "content": "..."),
                           "token":      {"type": "string", "secret": "..."}}
  --param NAME=VALUE    a job parameter (repeatable)
  --env NAME=VALUE      a build environment variable (repeatable); BRANCH_NAME and GIT_COMMIT
                        default to the workspace's git branch and commit
  --archive DIR         where archiveArtifacts copies files (default: a temporary directory)
exit code: 0 SUCCESS, 1 FAILURE, 3 UNSTABLE, 2 bad usage'''

    static void main(String[] argv) {
        System.exit(run(argv as List))
    }

    static int run(List<String> argv) {
        Map<String, String> params = [:]
        Map<String, String> env = [:]
        String workspace = '.'
        String library = System.getenv('SLIPWAY_REPO') ?: '.'
        String credentials = null
        String archive = null
        String jenkinsfile = null
        int i = 0
        try {
            while (i < argv.size()) {
                String a = argv[i]
                switch (a) {
                    case '--workspace': workspace = argv[++i]; break
                    case '--library': library = argv[++i]; break
                    case '--credentials': credentials = argv[++i]; break
                    case '--archive': archive = argv[++i]; break
                    case '--param': kv(argv[++i], params); break
                    case '--env': kv(argv[++i], env); break
                    case '-h':
                    case '--help': println USAGE; return 0
                    default:
                        if (a.startsWith('-') || jenkinsfile != null) {
                            throw new IllegalArgumentException("unexpected argument ${a}")
                        }
                        jenkinsfile = a
                }
                i++
            }
            if (jenkinsfile == null) {
                throw new IllegalArgumentException('no Jenkinsfile given')
            }
        } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
            System.err.println("pipeline: ${e instanceof IndexOutOfBoundsException ? 'an option lacks its value' : e.message}\n${USAGE}")
            return 2
        }
        File ws = new File(workspace).canonicalFile
        Harness h = Harness.executing(new File(library), ws.path)
        if (archive != null) {
            h.archiveDir = new File(archive)
        } else {
            h.keepArchive()
        }
        String branch = git(ws, 'rev-parse', '--abbrev-ref', 'HEAD')
        String commit = git(ws, 'rev-parse', 'HEAD')
        Map<String, String> defaults = [BUILD_NUMBER: '1', JOB_NAME: ws.name, BUILD_TAG: "harness-${ws.name}-1".toString(),
                                        BUILD_URL   : '', BRANCH_NAME: branch, GIT_COMMIT: commit]
        defaults.each { k, v -> if (v != null) { h.setGlobalEnv(k, v) } }
        env.each { k, v -> h.setGlobalEnv(k, v) }
        h.params.putAll(params)
        if (credentials != null) {
            Map c = (Map) new JsonSlurperClassic().parse(new File(credentials))
            c.each { id, v -> h.credential((String) id, (Map) v) }
        }
        String result = h.run(new File(jenkinsfile).getText('UTF-8'), new File(jenkinsfile).name)
        System.err.println("pipeline: ${result}; stages: ${h.build.stages.collect { "${it.name} ${it.status}" }.join(', ')}; archive: ${h.archiveDir}")
        return result == 'SUCCESS' ? 0 : result == 'UNSTABLE' ? 3 : 1
    }

    private static void kv(String s, Map<String, String> into) {
        int eq = s.indexOf('=')
        if (eq <= 0) {
            throw new IllegalArgumentException("expected NAME=VALUE, got '${s}'")
        }
        into[s.substring(0, eq)] = s.substring(eq + 1)
    }

    private static String git(File dir, String... args) {
        try {
            Process p = (['git', '-C', dir.path] + (args as List)).execute()
            String out = p.inputStream.text.trim()
            return p.waitFor() == 0 && out ? out : null
        } catch (IOException ignored) {
            return null
        }
    }
}
