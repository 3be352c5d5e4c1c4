package harness

import java.nio.file.Files
import java.nio.file.attribute.PosixFilePermission

/**
 * A small pipeline runtime of the project's own, enough to run the shared library and
 * Jenkinsfile.example outside Jenkins. Two modes:
 *
 *   RECORDING  every step call is recorded with the environment it saw; `sh` answers from
 *              responders the test registers; files live in an in-memory file system per node.
 *   EXECUTING  `sh` runs for real (/bin/sh -xe, like Jenkins) with the environment of
 *              withEnv/withCredentials; files, stashes, archives and JUnit reports are real.
 *
 * In both modes withCredentials binds credentials from the harness's store into environment
 * variables (secret files written under <workspace>@tmp/secretFiles, deleted afterwards) and,
 * as Jenkins does, the log masks the bound secret values and secret files' paths only while
 * the block runs: what a step prints after the block closes is shown as it is.
 */
class Harness {
    static enum Mode { RECORDING, EXECUTING }

    final Mode mode
    final Library library
    final String workspace
    // Where a branch of the pipeline is: its node, withEnv overlays and dir() stack. Per thread,
    // because `parallel` runs each branch on a thread of its own (copied from the parent's).
    static class Context {
        String node = 'built-in'
        List<Map<String, String>> overlays = []
        Deque<String> dirs = new ArrayDeque<String>()

        Context copy() {
            Context c = new Context()
            c.node = node
            c.overlays = new ArrayList<Map<String, String>>(overlays)
            c.dirs = new ArrayDeque<String>(dirs)
            return c
        }
    }
    private final ThreadLocal<Context> context = new ThreadLocal<Context>()

    Context ctx() {
        Context c = context.get()
        if (c == null) {
            c = new Context()
            context.set(c)
        }
        return c
    }

    String getNode() { return ctx().node }

    void setNode(String n) { ctx().node = n }

    List<Map<String, String>> getOverlays() { return ctx().overlays }

    Deque<String> getDirs() { return ctx().dirs }

    final Map<String, String> globalEnv = Collections.synchronizedMap(new LinkedHashMap<String, String>())
    final List<Call> calls = Collections.synchronizedList(new ArrayList<Call>())
    final Build build = new Build()
    final Map params = new LinkedHashMap()
    final Map<String, Map> credentials = new LinkedHashMap<String, Map>()
    // Masked for the whole build (declarative environment credentials()).
    final Set<String> secrets = new LinkedHashSet<String>()
    // Masked while a withCredentials block that bound them runs (one entry per binding).
    final List<String> boundSecrets = Collections.synchronizedList(new ArrayList<String>())
    final EnvVars envVars = new EnvVars(this)
    final List<String> libraryRefs = []
    final StringBuffer logText = new StringBuffer()
    PrintStream out

    // RECORDING mode
    final Map<String, Map<String, String>> fs = Collections.synchronizedMap([:])
    final List<Map> responders = []
    final Map<String, String> resources = [:]
    boolean unix = true
    final Map<String, Map<String, String>> stashes = Collections.synchronizedMap([:])

    // EXECUTING mode
    File archiveDir
    File stashDir
    double sleepScale = 1.0d

    private final Map<String, PipelineScript> varInstances = [:]

    Harness(Mode mode, File libraryRoot, String workspace) {
        this.mode = mode
        this.library = Library.load(libraryRoot)
        this.workspace = workspace
        this.out = mode == Mode.EXECUTING ? System.out : null
        globalEnv.WORKSPACE = workspace
        globalEnv.NODE_NAME = 'built-in'
        if (mode == Mode.EXECUTING) {
            scratch = Files.createTempDirectory('slipway-harness').toFile()
            archiveDir = new File(scratch, 'archive')
            stashDir = new File(scratch, 'stash')
            new File(workspace).mkdirs()
            SCRATCH.add(scratch)
        }
    }

    // Stashes and the default archive directory of EXECUTING runs, removed when the JVM
    // exits unless keepArchive() was called (the pipeline runner keeps and prints it).
    private File scratch
    private static final List<File> SCRATCH = Collections.synchronizedList(new ArrayList<File>())
    static {
        Runtime.runtime.addShutdownHook(new Thread({
            synchronized (SCRATCH) {
                for (File f : SCRATCH) {
                    f.deleteDir()
                }
            }
        } as Runnable))
    }

    /** Keeps this run's archive after the JVM exits. */
    void keepArchive() {
        SCRATCH.remove(scratch)
        new File(scratch, 'stash').deleteDir()
    }

    static Harness recording(File libraryRoot, String workspace = '/ws/app') {
        return new Harness(Mode.RECORDING, libraryRoot, workspace)
    }

    static Harness executing(File libraryRoot, String workspace) {
        return new Harness(Mode.EXECUTING, libraryRoot, workspace)
    }

    // ---------------------------------------------------------------- running things

    /** Runs a Jenkinsfile's text; returns the build result. */
    String run(String jenkinsfile, String name = 'Jenkinsfile') {
        PipelineScript s = library.parse(jenkinsfile, name, libraryRefs)
        for (String ref : libraryRefs) {
            if (ref.split('@')[0] != 'slipway') {
                throw new PipelineError("@Library('${ref}'): only the slipway library is loaded by this harness")
            }
        }
        s.setHarness(this)
        s.binding = new Binding()
        try {
            s.run()
        } catch (Throwable t) {
            build.setResult('FAILURE')
            build.errors.add(t)
            log(t instanceof PipelineError ? "ERROR: ${t.message}" : t.toString())
        }
        build.setResult(build.result ?: 'SUCCESS')
        log("Finished: ${build.result}")
        return build.result
    }

    /** Calls a global variable (a step of the library) directly, as a Jenkinsfile would. */
    Object callStep(String name, Map args = [:]) {
        return step(name, [args] as Object[])
    }

    boolean isGlobalVar(String name) {
        return library.vars.containsKey(name)
    }

    synchronized PipelineScript globalVar(String name) {
        if (!varInstances.containsKey(name)) {
            PipelineScript s = (PipelineScript) library.vars[name].newInstance()
            s.setHarness(this)
            s.binding = new Binding()
            varInstances[name] = s
        }
        return varInstances[name]
    }

    /** Called with each step's name before it runs; a test may throw from it (an abort during that step). */
    Closure beforeStep = null

    /** Every method a pipeline script calls that it does not define lands here. */
    Object step(String name, Object[] args) {
        if (beforeStep != null) {
            beforeStep.call(name)
        }
        if (isGlobalVar(name)) {
            record(name, args)
            return globalVar(name).invokeMethod('call', args)
        }
        Closure body = args.length > 0 && args[-1] instanceof Closure ? (Closure) args[-1] : null
        Object[] a = body != null ? (args.length > 1 ? args[0..-2] as Object[] : new Object[0]) : args
        switch (name) {
            case 'pipeline':
                new Declarative(this, (PipelineScript) body.owner).run(body)
                return null
            case 'echo':
                record(name, a)
                log(String.valueOf(a ? a[0] : ''))
                return null
            case 'error':
                record(name, a)
                throw new PipelineError(String.valueOf(named(a, 'message').message))
            case 'unstable':
                record(name, a)
                log("WARNING: ${named(a, 'message').message}")
                build.setResult('UNSTABLE')
                return null
            case 'sh':
                return sh(named(a, 'script'))
            case 'isUnix':
                record(name, a)
                return mode == Mode.EXECUTING ? true : unix
            case 'pwd':
                record(name, a)
                if (named(a, 'tmp').tmp) {
                    String t = cwd() + '@tmp'
                    if (mode == Mode.EXECUTING) {
                        new File(t).mkdirs()
                    }
                    return t
                }
                return cwd()
            case 'dir':
                record(name, a)
                return inDir(resolve(String.valueOf(a[0])), body)
            case 'fileExists':
                record(name, a)
                return exists(resolve(String.valueOf(named(a, 'file').file)))
            case 'readFile':
                record(name, a)
                return readText(resolve(String.valueOf(named(a, 'file').file)))
            case 'writeFile':
                Map w = named(a, 'file')
                record(name, [file: w.file] as Object[])
                writeText(resolve(String.valueOf(w.file)), String.valueOf(w.text))
                return null
            case 'libraryResource':
                record(name, a)
                String r = String.valueOf(named(a, 'resource').resource)
                return resources.containsKey(r) ? resources[r] : library.resource(r)
            case 'withEnv':
                record(name, a)
                return withEnvOverlay(parseEnvList((List) a[0]), body)
            case 'withCredentials':
                return withCredentials((List) a[0], body)
            case 'usernamePassword':
            case 'sshUserPrivateKey':
            case 'file':
            case 'string':
                Map binding = new LinkedHashMap(named(a, 'credentialsId'))
                binding.$class = name
                return binding
            case 'sshagent':
                return sshagent(a, body)
            case 'retry':
                record(name, a)
                return retry(a[0] instanceof Map ? (int) ((Map) a[0]).count : (int) a[0], body)
            case 'sleep':
                record(name, a)
                doSleep(named(a, 'time'))
                return null
            case 'timeout':
            case 'timestamps':
            case 'ansiColor':
            case 'script':
                record(name, a)
                return body.call()
            case 'lock':
                Map l = named(a, 'resource')
                record(name, [l] as Object[])
                synchronized (lockObject(String.valueOf(l.resource ?: l.label))) {
                    return body.call()
                }
            case 'node':
                record(name, a)
                return onNode(a ? String.valueOf(named(a, 'label').label) : 'built-in', body)
            case 'catchError':
                record(name, a)
                Map c = a ? named(a, 'message') : [:]
                try {
                    return body.call()
                } catch (Throwable t) {
                    log("ERROR: ${t.message}")
                    build.setResult(String.valueOf(c.buildResult ?: 'FAILURE'))
                    return null
                }
            case 'parallel':
                record(name, a)
                return parallel((Map) a[0])
            case 'stash':
                return stash(named(a, 'name'))
            case 'unstash':
                return unstash(String.valueOf(named(a, 'name').name))
            case 'junit':
                return junit(named(a, 'testResults'))
            case 'archiveArtifacts':
                return archive(named(a, 'artifacts'))
            case 'deleteDir':
                record(name, a)
                deleteDir(cwd())
                return null
            case 'checkout':
            case 'properties':
            case 'cleanWs':
            case 'mail':
            case 'emailext':
            case 'milestone':
            case 'buildDiscarder':
            case 'disableConcurrentBuilds':
                record(name, a)
                return null
            default:
                throw new PipelineError("No such DSL method '${name}' found among steps known to the slipway test harness")
        }
    }

    // ---------------------------------------------------------------- recording helpers

    Call record(String name, Object args) {
        Object[] a = args instanceof Object[] ? (Object[]) args : [args] as Object[]
        Object normalized = a.length == 1 && a[0] instanceof Map ? new LinkedHashMap((Map) a[0]) : (a as List)
        Call c = new Call(name: name, args: normalized, env: visibleEnv(), cwd: cwd(), node: node)
        calls.add(c)
        return c
    }

    List<Call> calls(String name) {
        synchronized (calls) {
            return calls.findAll { it.name == name }
        }
    }

    /** Every script passed to sh, in order. */
    List<String> scripts() {
        return calls('sh').collect { (String) it.arg('script') }
    }

    /**
     * Registers how `sh` answers in RECORDING mode: match is a String (contained in the
     * script), a java.util.regex.Pattern (found in it) or a Closure(Call) -> boolean; respond
     * is a Closure(Call) returning an Integer (status), a String (stdout, status 0) or a Map
     * [status:, stdout:]. The most recently registered match wins.
     */
    Harness onSh(Object match, Closure respond) {
        responders.add(0, [match: match, respond: respond])
        return this
    }

    /** Puts a file into the current node's in-memory file system (RECORDING). */
    Harness seed(String path, String content) {
        nodeFs()[resolve(path)] = content
        return this
    }

    Map<String, String> nodeFs() {
        synchronized (fs) {
            if (!fs.containsKey(node)) {
                fs[node] = Collections.synchronizedSortedMap(new TreeMap<String, String>())
            }
            return fs[node]
        }
    }

    Harness credential(String id, Map c) {
        credentials[id] = c
        return this
    }

    Map credential(String id) {
        Map c = credentials[id]
        if (c == null) {
            throw new PipelineError("Could not find credentials entry with ID '${id}'")
        }
        return c
    }

    void addSecret(String s) {
        if (maskable(s)) {
            secrets.add(s)
        }
    }

    private static boolean maskable(String s) {
        return s != null && s.length() >= 3 && !s.contains('\n')
    }

    // ---------------------------------------------------------------- environment

    /** What `env` shows: the agent's environment (EXECUTING), the build's, then overlays. */
    Map<String, String> env() {
        Map<String, String> m = new LinkedHashMap<String, String>()
        if (mode == Mode.EXECUTING) {
            m.putAll(System.getenv())
        }
        m.putAll(visibleEnv())
        return m
    }

    /** The build environment without the agent's own: what a step call is recorded with. */
    Map<String, String> visibleEnv() {
        Map<String, String> m = new LinkedHashMap<String, String>()
        for (Map.Entry e : params.entrySet()) { // job parameters are environment variables too
            m[(String) e.key] = e.value == null ? '' : e.value.toString()
        }
        synchronized (globalEnv) {
            m.putAll(globalEnv)
        }
        for (Map<String, String> o : overlays) {
            m.putAll(o)
        }
        return m
    }

    void setGlobalEnv(String name, String value) {
        if (value == null) {
            globalEnv.remove(name)
        } else {
            globalEnv[name] = value
        }
    }

    Object withEnvOverlay(Map vars, Closure body) {
        overlays.add(new LinkedHashMap<String, String>(vars))
        try {
            return body.call()
        } finally {
            overlays.remove(overlays.size() - 1)
        }
    }

    private Map<String, String> parseEnvList(List list) {
        Map<String, String> m = new LinkedHashMap<String, String>()
        for (Object o : list) {
            String s = o.toString()
            int eq = s.indexOf('=')
            String k = s.substring(0, eq)
            String v = s.substring(eq + 1)
            int plus = k.indexOf('+')
            if (plus > 0) { // PATH+EXTRA=/dir prepends, as Jenkins does
                k = k.substring(0, plus)
                String old = env()[k]
                v = old ? v + ':' + old : v
            }
            m[k] = v
        }
        return m
    }

    // ---------------------------------------------------------------- log

    synchronized void log(String s) {
        String m = mask(s)
        logText.append(m).append('\n')
        if (out != null) {
            out.println(m)
            out.flush()
        }
    }

    String mask(String s) {
        List<String> all = new ArrayList<String>(secrets)
        synchronized (boundSecrets) {
            all.addAll(boundSecrets)
        }
        String m = s
        for (String secret : all) {
            m = m.replace(secret, '****')
        }
        return m
    }

    // ---------------------------------------------------------------- files

    String cwd() {
        return dirs.isEmpty() ? workspace : dirs.peek()
    }

    String resolve(String p) {
        return normalize(p.startsWith('/') ? p : cwd() + '/' + p)
    }

    static String normalize(String p) {
        List<String> parts = []
        for (String s : p.split('/')) {
            if (s == '' || s == '.') {
                continue
            }
            if (s == '..') {
                if (parts) {
                    parts.remove(parts.size() - 1)
                }
            } else {
                parts.add(s)
            }
        }
        return '/' + parts.join('/')
    }

    boolean exists(String abs) {
        if (mode == Mode.EXECUTING) {
            return new File(abs).exists()
        }
        Map<String, String> f = nodeFs()
        return f.containsKey(abs) || f.keySet().any { it.startsWith(abs + '/') }
    }

    String readText(String abs) {
        if (mode == Mode.EXECUTING) {
            File f = new File(abs)
            if (!f.isFile()) {
                throw new PipelineError("java.nio.file.NoSuchFileException: ${abs}")
            }
            return f.getText('UTF-8')
        }
        if (!nodeFs().containsKey(abs)) {
            throw new PipelineError("java.nio.file.NoSuchFileException: ${abs}")
        }
        return nodeFs()[abs]
    }

    void writeText(String abs, String text) {
        if (mode == Mode.EXECUTING) {
            File f = new File(abs)
            f.parentFile.mkdirs()
            f.setText(text, 'UTF-8')
        } else {
            nodeFs()[abs] = text
        }
    }

    /** Paths of the files under dir, relative to it. */
    List<String> listFiles(String dir) {
        List<String> out = []
        if (mode == Mode.EXECUTING) {
            File root = new File(dir)
            if (root.isDirectory()) {
                root.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
                    out.add(root.toPath().relativize(f.toPath()).toString())
                }
            }
        } else {
            for (String k : nodeFs().keySet()) {
                if (k.startsWith(dir + '/')) {
                    out.add(k.substring(dir.length() + 1))
                }
            }
        }
        return out
    }

    private Object inDir(String abs, Closure body) {
        if (mode == Mode.EXECUTING) {
            new File(abs).mkdirs()
        }
        dirs.push(abs)
        try {
            return body.call()
        } finally {
            dirs.pop()
        }
    }

    private void deleteDir(String abs) {
        if (mode == Mode.EXECUTING) {
            new File(abs).deleteDir()
        } else {
            nodeFs().keySet().removeAll(nodeFs().keySet().findAll { it == abs || it.startsWith(abs + '/') })
        }
    }

    // ---------------------------------------------------------------- sh

    private Object sh(Map a) {
        Call c = record('sh', [a] as Object[])
        String script = String.valueOf(a.script)
        Map r = mode == Mode.EXECUTING ? execute(script, a.returnStdout as boolean) : respond(c)
        c.extra.status = r.status
        c.extra.stdout = r.stdout
        if (a.returnStatus) {
            return r.status
        }
        if (r.status != 0) {
            throw new PipelineError("script returned exit code ${r.status}")
        }
        return a.returnStdout ? r.stdout : null
    }

    // Responders are the tests' single-threaded fakes: one at a time, even from parallel branches.
    private synchronized Map respond(Call c) {
        String script = (String) c.arg('script')
        for (Map r : responders) {
            Object m = r.match
            boolean hit = m instanceof java.util.regex.Pattern ? ((java.util.regex.Pattern) m).matcher(script).find() :
                    m instanceof Closure ? ((Closure) m).call(c) as boolean : script.contains(String.valueOf(m))
            if (hit) {
                Object v = ((Closure) r.respond).call(c)
                if (v instanceof Integer) {
                    return [status: v, stdout: '']
                }
                if (v instanceof Map) {
                    return [status: ((Map) v).status ?: 0, stdout: ((Map) v).stdout ?: '']
                }
                return [status: 0, stdout: v == null ? '' : v.toString()]
            }
        }
        return [status: 0, stdout: '']
    }

    private Map execute(String script, boolean captureStdout) {
        File dir = new File(tmpDir(), "durable-${UUID.randomUUID().toString()[0..7]}")
        dir.mkdirs()
        File f = new File(dir, 'script.sh')
        f.setText(script, 'UTF-8')
        List<String> cmd = script.startsWith('#!') ? [f.path] : ['/bin/sh', '-xe', f.path]
        f.setExecutable(true)
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(new File(cwd()))
        Map<String, String> penv = pb.environment()
        penv.putAll(env())
        Process p = pb.start()
        p.outputStream.close()
        StringBuilder captured = new StringBuilder()
        Thread err = pump(p.errorStream, null)
        Thread std = pump(p.inputStream, captureStdout ? captured : null)
        int rc = p.waitFor()
        err.join()
        std.join()
        dir.deleteDir()
        return [status: rc, stdout: captured.toString()]
    }

    private Thread pump(InputStream s, StringBuilder capture) {
        Thread t = Thread.start {
            s.withReader('UTF-8') { Reader r ->
                if (capture != null) {
                    capture.append(r.text)
                } else {
                    r.eachLine { String line -> log(line) }
                }
            }
        }
        return t
    }

    private String tmpDir() {
        File t = new File(workspace + '@tmp')
        t.mkdirs()
        return t.path
    }

    // ---------------------------------------------------------------- credentials

    private Object withCredentials(List bindings, Closure body) {
        Call c = record('withCredentials', [bindings] as Object[])
        Map<String, String> vars = new LinkedHashMap<String, String>()
        List<String> files = []
        List<String> masked = []
        try {
            for (Object o : bindings) {
                Map b = (Map) o
                Map cred = credential(String.valueOf(b.credentialsId))
                expectType(b, cred)
                switch (b.$class) {
                    case 'usernamePassword':
                        vars[(String) b.usernameVariable] = (String) cred.username
                        vars[(String) b.passwordVariable] = (String) cred.password
                        // The username is shown, as Jenkins does unless the credential marks it secret.
                        masked.add((String) cred.password)
                        break
                    case 'string':
                        vars[(String) b.variable] = (String) cred.secret
                        masked.add((String) cred.secret)
                        break
                    case 'file':
                        String path = secretFile((String) (cred.fileName ?: b.credentialsId), contentOf(cred, 'content', 'path'))
                        files.add(path)
                        masked.add(path) // Jenkins masks a secret file's path
                        vars[(String) b.variable] = path
                        break
                    case 'sshUserPrivateKey':
                        String key = secretFile('private_key.key', contentOf(cred, 'privateKey', 'privateKeyFile'))
                        files.add(key)
                        masked.add(key)
                        vars[(String) b.keyFileVariable] = key
                        if (b.passphraseVariable) {
                            vars[(String) b.passphraseVariable] = (String) (cred.passphrase ?: '')
                            masked.add((String) cred.passphrase)
                        }
                        if (b.usernameVariable) {
                            vars[(String) b.usernameVariable] = (String) (cred.username ?: '')
                        }
                        break
                    default:
                        throw new PipelineError("withCredentials: unknown binding ${b.$class}")
                }
            }
            c.extra.variables = new ArrayList<String>(vars.keySet())
            masked = masked.findAll { maskable(it) }
            boundSecrets.addAll(masked)
            try {
                return withEnvOverlay(vars, body)
            } finally {
                synchronized (boundSecrets) {
                    for (String m : masked) {
                        boundSecrets.remove(m) // one occurrence: a nested or parallel block may bind it too
                    }
                }
            }
        } finally {
            for (String f : files) {
                if (mode == Mode.EXECUTING) {
                    new File(f).parentFile.deleteDir()
                } else {
                    nodeFs().remove(f)
                }
            }
        }
    }

    private static void expectType(Map binding, Map cred) {
        String want = binding.$class
        if (cred.type != want) {
            throw new PipelineError("Credentials '${binding.credentialsId}' is of type '${cred.type}' where '${want}' was expected")
        }
    }

    private static String contentOf(Map cred, String inline, String path) {
        if (cred[inline] != null) {
            return (String) cred[inline]
        }
        if (cred[path] != null) {
            return new File((String) cred[path]).getText('UTF-8')
        }
        throw new PipelineError("credential has neither ${inline} nor ${path}")
    }

    private String secretFile(String name, String content) {
        String dir = "${workspace}@tmp/secretFiles/${UUID.randomUUID()}"
        String path = "${dir}/${name}"
        if (mode == Mode.EXECUTING) {
            File d = new File(dir)
            d.mkdirs()
            File f = new File(path)
            f.setText(content, 'UTF-8')
            Files.setPosixFilePermissions(f.toPath(), [PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE] as Set)
        } else {
            nodeFs()[path] = content
        }
        return path
    }

    private Object sshagent(Object[] a, Closure body) {
        Map m = a.length == 1 && a[0] instanceof Map ? (Map) a[0] : [credentials: a[0]]
        record('sshagent', [m] as Object[])
        List ids = (List) m.credentials
        if (mode == Mode.RECORDING) {
            return withEnvOverlay([SSH_AUTH_SOCK: "${workspace}@tmp/ssh-agent/agent.sock".toString()], body)
        }
        Process agent = ['ssh-agent', '-s'].execute()
        String text = agent.text
        String sock = (text =~ /SSH_AUTH_SOCK=([^;]+);/)[0][1]
        String pid = (text =~ /SSH_AGENT_PID=([0-9]+);/)[0][1]
        try {
            for (Object id : ids) {
                Map cred = credential(String.valueOf(id))
                String key = secretFile('agent_key', contentOf(cred, 'privateKey', 'privateKeyFile'))
                try {
                    Process add = new ProcessBuilder('ssh-add', key).redirectErrorStream(true)
                    add.environment().SSH_AUTH_SOCK = sock
                    Process ap = add.start()
                    ap.outputStream.close()
                    String o = ap.inputStream.text
                    if (ap.waitFor() != 0) {
                        throw new PipelineError("sshagent: ssh-add failed for '${id}': ${o.trim()}")
                    }
                } finally {
                    new File(key).parentFile.deleteDir()
                }
            }
            return withEnvOverlay([SSH_AUTH_SOCK: sock, SSH_AGENT_PID: pid], body)
        } finally {
            ['kill', pid].execute().waitFor()
        }
    }

    // ---------------------------------------------------------------- other steps

    private Object retry(int count, Closure body) {
        Throwable last = null
        for (int i = 1; i <= count; i++) {
            try {
                return body.call()
            } catch (Throwable t) {
                last = t
                log("ERROR: ${t.message}")
                if (i < count) {
                    log('Retrying')
                }
            }
        }
        throw last
    }

    private void doSleep(Map a) {
        long n = ((Number) a.time).longValue()
        String unit = a.unit ?: 'SECONDS'
        long ms = java.util.concurrent.TimeUnit.valueOf(unit).toMillis(n)
        if (mode == Mode.EXECUTING && sleepScale > 0) {
            Thread.sleep((long) (ms * sleepScale))
        }
    }

    private final Map<String, Object> locks = [:]

    private synchronized Object lockObject(String name) {
        if (!locks.containsKey(name)) {
            locks[name] = new Object()
        }
        return locks[name]
    }

    private Object onNode(String label, Closure body) {
        String previous = node
        node = mode == Mode.RECORDING ? label : previous
        try {
            return withEnvOverlay([NODE_NAME: node], body)
        } finally {
            node = previous
        }
    }

    /**
     * Each branch on a thread of its own, started together, as Jenkins runs them concurrently:
     * races between branches (shared files, env writes) can show. Every branch runs to its end
     * (failFast is not modelled); the first failure, in branch order, is rethrown.
     */
    private Object parallel(Map branches) {
        Context parent = ctx()
        Map<String, Object> results = Collections.synchronizedMap(new LinkedHashMap<String, Object>())
        Map<String, Throwable> failures = Collections.synchronizedMap(new LinkedHashMap<String, Throwable>())
        List<Thread> threads = []
        java.util.concurrent.CountDownLatch start = new java.util.concurrent.CountDownLatch(1)
        for (Map.Entry e : branches.entrySet()) {
            if (e.key == 'failFast') {
                continue
            }
            String name = String.valueOf(e.key)
            Closure body = (Closure) e.value
            Context mine = parent.copy()
            Thread t = new Thread({
                context.set(mine)
                try {
                    start.await()
                    results[name] = body.call()
                } catch (Throwable x) {
                    failures[name] = x
                }
            } as Runnable, "parallel-${name}")
            threads.add(t)
            t.start()
        }
        start.countDown()
        for (Thread t : threads) {
            t.join()
        }
        for (Object name : branches.keySet()) {
            if (failures.containsKey(name)) {
                throw failures[name]
            }
        }
        return results
    }

    private Object stash(Map a) {
        Call c = record('stash', [a] as Object[])
        String base = cwd()
        List<String> files = Ant.match((String) (a.includes ?: '**'), listFiles(base), (String) a.excludes)
        if (files.isEmpty() && !a.allowEmpty) {
            throw new PipelineError("No files included in stash ‘${a.name}’")
        }
        c.extra.files = files
        if (mode == Mode.EXECUTING) {
            File to = new File(stashDir, (String) a.name)
            to.deleteDir()
            for (String rel : files) {
                copy(new File(base, rel), new File(to, rel))
            }
        } else {
            Map<String, String> m = [:]
            for (String rel : files) {
                m[rel] = nodeFs()[base + '/' + rel]
            }
            stashes[(String) a.name] = m
        }
        return null
    }

    private Object unstash(String name) {
        Call c = record('unstash', [name] as Object[])
        String base = cwd()
        if (mode == Mode.EXECUTING) {
            File from = new File(stashDir, name)
            if (!from.isDirectory()) {
                throw new PipelineError("No such saved stash ‘${name}’")
            }
            from.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
                copy(f, new File(base, from.toPath().relativize(f.toPath()).toString()))
            }
        } else {
            if (!stashes.containsKey(name)) {
                throw new PipelineError("No such saved stash ‘${name}’")
            }
            for (Map.Entry e : stashes[name].entrySet()) {
                nodeFs()[base + '/' + e.key] = (String) e.value
            }
            c.extra.files = new ArrayList(stashes[name].keySet())
        }
        return null
    }

    private static void copy(File from, File to) {
        to.parentFile.mkdirs()
        Files.copy(from.toPath(), to.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING)
        to.setExecutable(from.canExecute())
    }

    private Object junit(Map a) {
        Call c = record('junit', [a] as Object[])
        String base = cwd()
        List<String> files = Ant.match((String) a.testResults, listFiles(base))
        TestSummary s = new TestSummary()
        for (String rel : files) {
            def xml = new XmlSlurper().parseText(readText(base + '/' + rel))
            xml.'**'.findAll { it.name() == 'testcase' }.each { tc ->
                s.totalCount++
                if (tc.failure.size() > 0 || tc.error.size() > 0) {
                    s.failCount++
                } else if (tc.skipped.size() > 0) {
                    s.skipCount++
                }
            }
        }
        c.extra.files = files
        c.extra.summary = s
        if (files.isEmpty() && !a.allowEmptyResults) {
            throw new PipelineError('No test report files were found. Configuration error?')
        }
        log("Recording test results: ${s}")
        if (s.failCount > 0) {
            build.setResult('UNSTABLE')
        }
        return s
    }

    private Object archive(Map a) {
        Call c = record('archiveArtifacts', [a] as Object[])
        String base = cwd()
        List<String> files = Ant.match((String) a.artifacts, listFiles(base), (String) a.excludes)
        c.extra.files = files
        if (files.isEmpty() && !a.allowEmptyArchive) {
            throw new PipelineError("No artifacts found that match the file pattern \"${a.artifacts}\". Configuration error?")
        }
        if (mode == Mode.EXECUTING) {
            for (String rel : files) {
                copy(new File(base, rel), new File(archiveDir, rel))
            }
        }
        log("Archiving artifacts: ${files.join(', ')}")
        return null
    }

    /** Named arguments: a single Map as is, else the first positional argument under `key`. */
    static Map named(Object[] a, String key) {
        if (a.length == 1 && a[0] instanceof Map) {
            return (Map) a[0]
        }
        return a.length > 0 ? [(key): a[0]] : [:]
    }
}
