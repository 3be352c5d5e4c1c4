package harness

/**
 * The `env` global: reads see the build environment overlaid by withEnv/withCredentials;
 * writes (env.X = 'y', env['X'] = 'y') set a build-wide variable, as in Jenkins.
 */
class EnvVars extends GroovyObjectSupport {
    private final Harness h

    EnvVars(Harness h) {
        this.h = h
    }

    Object getProperty(String name) {
        return h.env()[name]
    }

    void setProperty(String name, Object value) {
        h.setGlobalEnv(name, value == null ? null : value.toString())
    }

    Object getAt(String name) {
        return getProperty(name)
    }

    void putAt(String name, Object value) {
        setProperty(name, value)
    }

    Map<String, String> getEnvironment() {
        return h.env()
    }

    String toString() {
        return h.env().toString()
    }
}
