package harness

/**
 * A small interpreter of declarative pipelines: agent, options, parameters, environment,
 * stages/stage, when (branch, expression, environment, not, allOf, anyOf), steps, and post
 * (always, success, unstable, failure, cleanup) at pipeline and stage level. As in Jenkins, a
 * failed stage fails the build and skips the stages after it; post conditions still run.
 * Not supported (fails loudly): nested stages, parallel, matrix, input.
 */
class Declarative {
    final Harness h
    final PipelineScript script

    Declarative(Harness h, PipelineScript script) {
        this.h = h
        this.script = script
    }

    void run(Closure body) {
        PipelineDsl p = new PipelineDsl(script)
        with(body, p)
        h.record('pipeline', [agent: p.agent, options: p.options, parameters: p.parameters.keySet().toList()])
        for (Map.Entry e : p.parameters.entrySet()) {
            if (!h.params.containsKey(e.key)) {
                h.params[e.key] = e.value // the parameter's default, as on a first build
            }
        }
        for (Closure env : p.environment) {
            Map vars = evaluateEnvironment(env)
            for (Map.Entry e : vars.entrySet()) {
                h.setGlobalEnv((String) e.key, e.value?.toString())
            }
        }
        boolean failed = false
        for (StageDsl s : p.stages) {
            if (failed) {
                h.log("Stage \"${s.name}\" skipped due to earlier failure(s)")
                h.build.stages.add([name: s.name, status: 'SKIPPED', reason: 'earlier failure'])
                continue
            }
            if (!s.conditions.every { it.call() }) {
                h.log("Stage \"${s.name}\" skipped due to when conditional")
                h.build.stages.add([name: s.name, status: 'SKIPPED', reason: 'when'])
                continue
            }
            failed = !runStage(s)
        }
        h.build.setResult(h.build.result ?: 'SUCCESS')
        runPost(p.post, 'pipeline')
    }

    /** Runs one stage; false when it failed. */
    private boolean runStage(StageDsl s) {
        h.log("[Pipeline] { (${s.name})")
        String before = h.build.currentResult
        boolean ok = true
        Map stageEnv = [:]
        for (Closure env : s.environment) {
            stageEnv.putAll(evaluateEnvironment(env))
        }
        h.withEnvOverlay(stageEnv) {
            try {
                if (s.steps == null) {
                    throw new PipelineError("stage '${s.name}' has no steps")
                }
                runSteps(s.steps)
            } catch (Throwable t) {
                ok = false
                fail(t)
            }
            String status = !ok ? 'FAILURE' : (h.build.currentResult != before && h.build.currentResult == 'UNSTABLE' ? 'UNSTABLE' : 'SUCCESS')
            h.build.stages.add([name: s.name, status: status])
            runPost(s.post, "stage ${s.name}", ok ? null : 'FAILURE')
        }
        h.log("[Pipeline] } (${s.name})")
        return ok
    }

    private void fail(Throwable t) {
        h.build.setResult('FAILURE')
        h.build.errors.add(t)
        if (t instanceof PipelineError) {
            h.log("ERROR: ${t.message}")
        } else {
            StringWriter w = new StringWriter()
            t.printStackTrace(new PrintWriter(w))
            h.log(w.toString())
        }
    }

    private void runPost(Map<String, Closure> post, String where, String localResult = null) {
        String result = localResult ?: h.build.currentResult
        List<String> order = ['always', 'changed', 'fixed', 'regression', 'aborted', 'success', 'unstable', 'failure', 'unsuccessful', 'cleanup']
        for (String cond : order) {
            Closure c = post[cond]
            if (c == null) {
                continue
            }
            boolean applies = cond in ['always', 'cleanup'] ||
                    (cond == 'success' && result == 'SUCCESS') ||
                    (cond == 'unstable' && result == 'UNSTABLE') ||
                    (cond == 'failure' && result == 'FAILURE') ||
                    (cond == 'aborted' && result == 'ABORTED') ||
                    (cond == 'unsuccessful' && result != 'SUCCESS')
            if (applies) {
                h.log("[Pipeline] post (${where}): ${cond}")
                try {
                    runSteps(c)
                } catch (Throwable t) {
                    fail(t)
                }
            }
        }
    }

    void runSteps(Closure c) {
        c.delegate = script
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
    }

    private Map evaluateEnvironment(Closure c) {
        EnvironmentDsl e = new EnvironmentDsl(script, h)
        with(c, e)
        return e.vars
    }

    static void with(Closure c, Object delegate) {
        c.delegate = delegate
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
    }

    /** Ant-style match of a branch pattern, as `when { branch 'release-*' }` does. */
    static boolean branchMatches(String pattern, String branch) {
        return branch != null && Ant.regex(pattern).matcher(branch).matches()
    }
}

/** Unknown names inside the DSL's blocks resolve on the script (env, params, variables). */
class Forwarding {
    final PipelineScript script

    Forwarding(PipelineScript script) {
        this.script = script
    }

    def propertyMissing(String name) {
        return script.getProperty(name)
    }
}

class PipelineDsl extends Forwarding {
    Object agent
    List options = []
    Map parameters = new LinkedHashMap()
    List<Closure> environment = []
    List<StageDsl> stages = []
    Map<String, Closure> post = [:]

    PipelineDsl(PipelineScript script) {
        super(script)
    }

    def propertyMissing(String name) {
        return name in ['any', 'none'] ? name : super.propertyMissing(name)
    }

    void agent(Object a) {
        agent = a instanceof Closure ? 'label' : a
    }

    void options(Closure c) {
        Recorder r = new Recorder()
        Declarative.with(c, r)
        options.addAll(r.calls)
    }

    void triggers(Closure c) {
        Declarative.with(c, new Recorder())
    }

    void tools(Closure c) {
        Declarative.with(c, new Recorder())
    }

    void parameters(Closure c) {
        ParametersDsl p = new ParametersDsl()
        Declarative.with(c, p)
        parameters.putAll(p.values)
    }

    void environment(Closure c) {
        environment.add(c)
    }

    void stages(Closure c) {
        StagesDsl s = new StagesDsl(script)
        Declarative.with(c, s)
        stages.addAll(s.stages)
    }

    void post(Closure c) {
        PostDsl p = new PostDsl()
        Declarative.with(c, p)
        post.putAll(p.blocks)
    }
}

class Recorder {
    List calls = []

    def methodMissing(String name, Object args) {
        List a = args as List
        calls.removeAll { Object c -> a.any { it.is(c) } } // logRotator(...) inside buildDiscarder(...)
        Map call = [name: name, args: a]
        calls.add(call)
        return call
    }
}

class ParametersDsl {
    Map values = new LinkedHashMap()

    private void add(Map a, Object fallback) {
        values[a.name] = a.containsKey('defaultValue') ? a.defaultValue : fallback
    }

    void string(Map a) { add(a, '') }

    void text(Map a) { add(a, '') }

    void password(Map a) { add(a, '') }

    void booleanParam(Map a) { add(a, false) }

    void choice(Map a) {
        Object cs = a.choices
        List list = cs instanceof String ? ((String) cs).readLines() : (List) cs
        values[a.name] = list ? list[0] : ''
    }
}

class EnvironmentDsl extends Forwarding {
    final Harness h
    Map vars = new LinkedHashMap()

    EnvironmentDsl(PipelineScript script, Harness h) {
        super(script)
        this.h = h
    }

    def propertyMissing(String name) {
        if (vars.containsKey(name)) {
            return vars[name]
        }
        if (h.env().containsKey(name)) {
            return h.env()[name]
        }
        return super.propertyMissing(name)
    }

    def propertyMissing(String name, Object value) {
        vars[name] = value
    }

    String credentials(String id) {
        Map c = h.credential(id)
        if (c.type == 'string') {
            h.addSecret((String) c.secret)
            return c.secret
        }
        throw new PipelineError("the harness supports credentials('${id}') in environment {} only for secret text")
    }
}

class StagesDsl extends Forwarding {
    List<StageDsl> stages = []

    StagesDsl(PipelineScript script) {
        super(script)
    }

    void stage(String name, Closure c) {
        StageDsl s = new StageDsl(script, name)
        Declarative.with(c, s)
        stages.add(s)
    }
}

class StageDsl extends Forwarding {
    final String name
    Closure steps
    List<Closure> conditions = []
    List<Closure> environment = []
    Map<String, Closure> post = [:]

    StageDsl(PipelineScript script, String name) {
        super(script)
        this.name = name
    }

    void steps(Closure c) {
        steps = c
    }

    void agent(Object a) {}

    void options(Closure c) {}

    void environment(Closure c) {
        environment.add(c)
    }

    void when(Closure c) {
        WhenDsl w = new WhenDsl(script)
        Declarative.with(c, w)
        conditions.addAll(w.conditions)
    }

    void post(Closure c) {
        PostDsl p = new PostDsl()
        Declarative.with(c, p)
        post.putAll(p.blocks)
    }

    void stages(Closure c) {
        throw new PipelineError("stage '${name}': nested stages are not supported by the test harness")
    }

    void parallel(Closure c) {
        throw new PipelineError("stage '${name}': parallel is not supported by the test harness")
    }

    void input(Object o) {
        throw new PipelineError("stage '${name}': input is not supported by the test harness")
    }
}

class WhenDsl extends Forwarding {
    List<Closure> conditions = []

    WhenDsl(PipelineScript script) {
        super(script)
    }

    void branch(Object pattern) {
        String p = pattern instanceof Map ? ((Map) pattern).pattern : pattern.toString()
        conditions.add({ -> Declarative.branchMatches(p, (String) script.harness.env()['BRANCH_NAME']) })
    }

    void expression(Closure c) {
        conditions.add({ ->
            c.delegate = script
            c.resolveStrategy = Closure.DELEGATE_FIRST
            return c.call() as boolean
        })
    }

    void environment(Map a) {
        conditions.add({ -> script.harness.env()[a.name] == a.value })
    }

    void beforeAgent(boolean b) {}

    void not(Closure c) {
        WhenDsl inner = new WhenDsl(script)
        Declarative.with(c, inner)
        conditions.add({ -> !inner.conditions.every { it.call() } })
    }

    void allOf(Closure c) {
        WhenDsl inner = new WhenDsl(script)
        Declarative.with(c, inner)
        conditions.add({ -> inner.conditions.every { it.call() } })
    }

    void anyOf(Closure c) {
        WhenDsl inner = new WhenDsl(script)
        Declarative.with(c, inner)
        conditions.add({ -> inner.conditions.any { it.call() } })
    }
}

class PostDsl {
    Map<String, Closure> blocks = [:]

    def methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        if (!(name in ['always', 'changed', 'fixed', 'regression', 'aborted', 'success', 'unstable', 'failure', 'unsuccessful', 'cleanup']) ||
                a.length != 1 || !(a[0] instanceof Closure)) {
            throw new PipelineError("post: unknown condition ${name}")
        }
        blocks[name] = (Closure) a[0]
    }
}
