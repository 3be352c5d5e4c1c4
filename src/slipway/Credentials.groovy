package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * Which withCredentials bindings a step needs, and into which variables. Only credential IDs
 * pass through Groovy; the values exist only in the environment of the `sh` step, where the
 * binary reads them (registry, passphrase) or the script refers to them as "$VAR" (files).
 */
class Credentials implements Serializable {
    private static final long serialVersionUID = 1L

    /** [kind: usernamePassword|file|sshUserPrivateKey, args: the binding's named arguments]. */
    @NonCPS
    static List bindings(Map values) {
        List out = []
        if (Params.isSet(values.registryCredentialsId)) {
            out.add([kind: 'usernamePassword', args: [credentialsId: values.registryCredentialsId,
                                                      usernameVariable: Spec.REGISTRY_USER, passwordVariable: Spec.REGISTRY_PASSWORD]])
        }
        if (Params.isSet(values.dockerConfigCredentialsId)) {
            out.add([kind: 'file', args: [credentialsId: values.dockerConfigCredentialsId, variable: Spec.DOCKER_CONFIG_FILE]])
        }
        if (Params.isSet(values.sshCredentialsId)) {
            out.add([kind: 'sshUserPrivateKey', args: [credentialsId: values.sshCredentialsId, keyFileVariable: Spec.SSH_KEY_FILE,
                                                       passphraseVariable: Spec.SSH_PASSPHRASE, usernameVariable: Spec.SSH_USER]])
        }
        if (Params.isSet(values.knownHostsCredentialsId)) {
            out.add([kind: 'file', args: [credentialsId: values.knownHostsCredentialsId, variable: Spec.KNOWN_HOSTS_FILE]])
        }
        if (Params.isSet(values.envFileCredentialsId)) {
            out.add([kind: 'file', args: [credentialsId: values.envFileCredentialsId, variable: Spec.ENV_FILE]])
        }
        return out
    }

    /**
     * The variables of the bindings whose values Jenkins masks in the console: passwords,
     * passphrases and secret files' paths. The run script masks them too in what the step reads
     * back and repeats after the block closes (Cli.script). Usernames are left as they are, as
     * Jenkins shows them unless the credential says otherwise; they are part of user@host.
     */
    @NonCPS
    static List<String> secretVariables(Map values) {
        List<String> out = []
        for (Object o : bindings(values)) {
            Map args = (Map) ((Map) o).args
            for (String k : ['passwordVariable', 'passphraseVariable', 'keyFileVariable', 'variable']) {
                if (args[k]) {
                    out.add((String) args[k])
                }
            }
        }
        return out
    }
}
