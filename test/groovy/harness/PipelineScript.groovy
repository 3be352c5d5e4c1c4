package harness

/**
 * Base class of the Jenkinsfile and of every vars/*.groovy script, as CpsScript is in Jenkins:
 * unknown methods are pipeline steps or global variables (dispatched to the Harness); `env`,
 * `currentBuild`, `params` and `scm` are the run's.
 */
abstract class PipelineScript extends Script {
    Harness harness

    Object methodMissing(String name, Object args) {
        return harness.step(name, args instanceof Object[] ? (Object[]) args : [args] as Object[])
    }

    // Script.setProperty would put `harness` into the binding; keep it a field.
    void setProperty(String name, Object value) {
        if (name == 'harness') {
            harness = (Harness) value
        } else {
            super.setProperty(name, value)
        }
    }

    Object getProperty(String name) {
        switch (name) {
            case 'env': return harness.envVars
            case 'currentBuild': return harness.build
            case 'params': return harness.params
            case 'scm': return [$class: 'GitSCM', harness: 'scm']
            case 'harness': return harness
        }
        try {
            return super.getProperty(name)
        } catch (MissingPropertyException e) {
            if (harness.isGlobalVar(name)) {
                return harness.globalVar(name)
            }
            Map<String, String> env = harness.env()
            if (env.containsKey(name)) {
                return env[name] // as in Jenkins, environment variables are visible as bare names
            }
            throw e
        }
    }
}
