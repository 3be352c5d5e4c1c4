package harness

/** One recorded step call: its name, its arguments, and the context it ran in. */
class Call {
    String name
    Object args          // a Map for named arguments, else the positional list (closures left out)
    Map<String, String> env  // the environment the step saw (build env + withEnv + withCredentials)
    String cwd
    String node
    Map extra = [:]      // what the step did: matched files, results, bound secrets...

    /** A named argument, or the first positional one for key 'value'. */
    Object arg(String key) {
        if (args instanceof Map) {
            return ((Map) args)[key]
        }
        return key == 'value' && args instanceof List && !((List) args).isEmpty() ? ((List) args)[0] : null
    }

    String toString() {
        return "${name}(${args})"
    }
}
