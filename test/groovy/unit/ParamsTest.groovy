import harness.Harness
import harness.PipelineError
import org.junit.Test
import slipway.Params
import slipway.Spec

/** Every kind of bad input a step can get stops the build with a message naming step and parameter. */
class ParamsTest {
    static final List<String> STEPS = ['buildImages', 'runTests', 'pushImages', 'deployCompose', 'rollbackCompose']
    static final Map REQUIRED = [deployCompose: [hosts: 'app1', dir: 'd'], rollbackCompose: [hosts: 'app1', dir: 'd']]

    /** Runs a step and returns the message it stopped with (null when it did not stop). */
    static String errorOf(String step, Map args) {
        Harness h = Fixture.recording()
        new FakeAgent(h)
        try {
            h.callStep(step, args)
            return null
        } catch (PipelineError e) {
            // No step may run anything before its parameters are checked.
            assert h.calls('sh').isEmpty(): "${step} ran sh before rejecting its parameters"
            assert h.calls('error').size() == 1: 'bad input must stop the build through error()'
            return e.message
        }
    }

    @Test
    void unknownKeySuggestsTheNearestParameter() {
        assert errorOf('buildImages', [composefile: 'a.yml']) == "buildImages: unknown parameter 'composefile' (did you mean 'composeFiles'?)"
        assert errorOf('buildImages', [allowdirty: true]) == "buildImages: unknown parameter 'allowdirty' (did you mean 'allowDirty'?)"
        assert errorOf('runTests', [result: 'out']) == "runTests: unknown parameter 'result' (did you mean 'results'?)"
        assert errorOf('runTests', [unstableOnFail: true]) == "runTests: unknown parameter 'unstableOnFail' (did you mean 'unstableOnFailure'?)"
        assert errorOf('pushImages', [credentialsId: 'x']) == "pushImages: unknown parameter 'credentialsId' (did you mean 'registryCredentialsId' or 'dockerConfigCredentialsId'?)"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', host: 'b']) == "deployCompose: unknown parameter 'host' (did you mean 'hosts'?)"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', smokeURL: 'http://x']) == "deployCompose: unknown parameter 'smokeURL' (did you mean 'smokeUrl'?)"
        assert errorOf('rollbackCompose', [hosts: 'a', dir: 'd', too: 'abc']) == "rollbackCompose: unknown parameter 'too' (did you mean 'to'?)"
    }

    @Test
    void unknownKeyFarFromEverythingListsTheKnownOnes() {
        String m = errorOf('pushImages', [frobnicate: 1])
        assert m.startsWith("pushImages: unknown parameter 'frobnicate' (known: manifest, parallel, pinned, ")
    }

    @Test
    void everyStepRejectsUnknownKeys() {
        for (String step : STEPS) {
            Map args = new LinkedHashMap(REQUIRED[step] ?: [:])
            args.bogusParameterXyz = 1
            assert errorOf(step, args).startsWith("${step}: unknown parameter 'bogusParameterXyz'")
        }
    }

    @Test
    void wrongTypesNameStepParameterAndWhatWasGiven() {
        assert errorOf('buildImages', [pull: 'yes']) == "buildImages: parameter 'pull' must be a Boolean (true or false); got String 'yes'"
        assert errorOf('buildImages', [parallel: 'two']) == "buildImages: parameter 'parallel' must be an Integer; got String 'two'"
        assert errorOf('buildImages', [parallel: 0]) == "buildImages: parameter 'parallel' must be at least 1; got 0"
        assert errorOf('buildImages', [registry: ['a', 'b']]) == "buildImages: parameter 'registry' must be a String; got List [a, b]"
        assert errorOf('buildImages', [composeFiles: ['a.yml', 3]]) == "buildImages: parameter 'composeFiles' must be a String or a List of Strings; item 2 is Integer 3"
        assert errorOf('buildImages', [tags: [x: 1]]) == "buildImages: parameter 'tags' must be a String or a List of Strings; got Map [x:1]"
        assert errorOf('buildImages', [manifest: '']) == "buildImages: parameter 'manifest' must not be empty"
        assert errorOf('runTests', [timeout: '30 minutes']) == "runTests: parameter 'timeout' must be a duration like '90s', '5m' or '1h30m' (or a number of seconds); got String '30 minutes'"
        assert errorOf('runTests', [unstableOnFailure: 'true']) == "runTests: parameter 'unstableOnFailure' must be a Boolean (true or false); got String 'true' " +
                '(write unstableOnFailure: true without quotes; a job parameter: params.X.toBoolean())'
        assert errorOf('pushImages', [registryCredentialsId: '']) == "pushImages: parameter 'registryCredentialsId' must not be empty"
        assert errorOf('pushImages', [registryCredentialsId: 42]) == "pushImages: parameter 'registryCredentialsId' must be a String; got Integer 42"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', strategy: 'bluegreen']) == "deployCompose: parameter 'strategy' must be one of 'recreate', 'rolling', 'swarm'; got String 'bluegreen'"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', onFailure: 'ignore']) == "deployCompose: parameter 'onFailure' must be one of 'rollback', 'stop'; got String 'ignore'"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', keep: -1]) == "deployCompose: parameter 'keep' must be at least 1; got -1"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', canary: 1]) == "deployCompose: parameter 'canary' must be a Boolean (true or false); got Integer 1"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', healthTimeout: 2.5]) == "deployCompose: parameter 'healthTimeout' must be a duration like '90s', '5m' or '1h30m' (or a number of seconds); got BigDecimal 2.5"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', dir: 'x\u0000y']) == "deployCompose: parameter 'dir' contains a NUL character"
        assert errorOf('rollbackCompose', [hosts: 'a', dir: 'd', to: ['abc']]) == "rollbackCompose: parameter 'to' must be a String; got List [abc]"
    }

    @Test
    void missingRequiredParameterNamesTheAlternatives() {
        assert errorOf('deployCompose', [:]) == "deployCompose: missing required parameter 'hosts' (or 'hostsFile')"
        assert errorOf('deployCompose', [hosts: [], dir: 'd']) == "deployCompose: missing required parameter 'hosts' (or 'hostsFile')"
        assert errorOf('rollbackCompose', [dir: '/srv/app']) == "rollbackCompose: missing required parameter 'hosts' (or 'hostsFile')"
        assert errorOf('deployCompose', [hostsFile: 'hosts.txt']) == "deployCompose: missing required parameter 'dir'"
        assert errorOf('rollbackCompose', [hosts: 'a', dir: '']) == "rollbackCompose: missing required parameter 'dir'"
    }

    @Test
    void twoWaysOfGivingOneFlagAreRefused() {
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', sshCredentialsId: 'k', identity: '/k']) == "deployCompose: give either 'sshCredentialsId' or 'identity', not both"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', knownHostsCredentialsId: 'k', knownHosts: '/k']) == "deployCompose: give either 'knownHostsCredentialsId' or 'knownHosts', not both"
        assert errorOf('deployCompose', [hosts: 'a', dir: 'd', envFileCredentialsId: 'e', envFile: '.env']) == "deployCompose: give either 'envFileCredentialsId' or 'envFile', not both"
        assert errorOf('pushImages', [registryCredentialsId: 'r', dockerConfigCredentialsId: 'd']) == "pushImages: give either 'registryCredentialsId' or 'dockerConfigCredentialsId', not both"
    }

    @Test
    void positionalArgumentsAreRefused() {
        Harness h = Fixture.recording()
        try {
            h.step('pushImages', ['slipway-release.json'] as Object[])
            assert false
        } catch (PipelineError e) {
            // Not a MissingMethodException (a sandbox approval of GroovyObject.invokeMethod): the named-parameters error.
            assert e.message == "pushImages: parameters are named, like pushImages(manifest: 'slipway-release.json'); got String 'slipway-release.json'"
        }
        Map r = Params.check('pushImages', [manifest: 'm', parallel: null, pinned: 'p', registryCredentialsId: null, dockerConfigCredentialsId: null, tool: null], 'x')
        assert r.error == "pushImages: parameters are named, like pushImages(manifest: 'slipway-release.json'); got String 'x'"
    }

    @Test
    void lenientWhereJenkinsHandsOverStrings() {
        // Job parameters arrive as Strings; GStrings are Strings to the user.
        String n = '3'
        Map r = Params.check('deployCompose', defaults('deployCompose'), [hosts: "app${n}", dir: 'd', keep: n, parallel: 2L, healthTimeout: 90, lockWait: '1m30s'])
        assert r.values.hosts == ['app3']
        assert r.values.hosts[0] instanceof String
        assert r.values.keep == 3
        assert r.values.parallel == 2
        assert r.values.healthTimeout == '90s'
        assert r.values.lockWait == '1m30s'
    }

    @Test
    void explicitNullMeansTheDefault() {
        Map r = Params.check('pushImages', defaults('pushImages'), [pinned: null])
        assert r.values.pinned == 'slipway-compose.pinned.yml'
    }

    @Test
    void defaultsAreNotSharedBetweenCalls() {
        Map d = defaults('buildImages')
        Map r = Params.check('buildImages', d, [:])
        r.values.composeFiles.add('x')
        assert d.composeFiles == []
    }

    @Test
    void editDistance() {
        assert Params.distance('', '') == 0
        assert Params.distance('abc', '') == 3
        assert Params.distance('kitten', 'sitting') == 3
        assert Params.distance('composefile', 'composefiles') == 1
    }

    @Test
    void stepDefaultsAndSpecNameTheSameParameters() {
        for (String step : STEPS) {
            assert defaults(step).keySet() == Spec.params(step).keySet()
        }
    }

    /** The defaults map a step declares, read through the step itself. */
    static Map defaults(String step) {
        // Params.check throws IllegalStateException when a step's defaults and Spec disagree,
        // so a valid call proves they agree; the defaults are what a call with no arguments yields.
        Harness h = Fixture.recording()
        new FakeAgent(h)
        Map captured = null
        def original = Params.metaClass.static.check
        Params.metaClass.static.check = { String s, Map d, Object g ->
            captured = new LinkedHashMap(d)
            return [error: 'captured']
        }
        try {
            h.callStep(step, [:])
        } catch (PipelineError ignored) {
        } finally {
            GroovySystem.metaClassRegistry.removeMetaClass(Params)
        }
        assert captured != null
        return captured
    }
}
