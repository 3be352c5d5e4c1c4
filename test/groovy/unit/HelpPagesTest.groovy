import org.junit.Test
import slipway.Spec

/**
 * Each step's .txt help page (shown by Jenkins under Global Variables Reference, under its
 * default plain-text markup) documents exactly the step's parameters, each as
 *
 *   name (Type; --flag)
 *     description ... Default: ...
 *     Example: name: ...
 */
class HelpPagesTest {
    static final List<String> STEPS = ['buildImages', 'runTests', 'pushImages', 'deployCompose', 'rollbackCompose']
    static final java.util.regex.Pattern HEADER = ~/^  ([A-Za-z]+) \(([^;()]+)(?:; (-[-a-z]*))?\)$/

    /** name -> [type:, flag:, text: the indented lines joined] */
    static Map<String, Map> entries(String page) {
        Map<String, Map> out = new LinkedHashMap<String, Map>()
        Map cur = null
        for (String line : page.readLines()) {
            def m = HEADER.matcher(line)
            if (m.matches()) {
                assert !out.containsKey(m.group(1)): "${m.group(1)} documented twice"
                cur = [type: m.group(2), flag: m.group(3), text: '']
                out[m.group(1)] = cur
            } else if (cur != null && line.startsWith('    ')) {
                cur.text = (cur.text + ' ' + line.trim()).trim()
            } else {
                cur = null
            }
        }
        return out
    }

    @Test
    void everyParameterHasAnEntryWithItsTypeFlagDefaultAndAnExample() {
        for (String step : STEPS) {
            File f = new File(Fixture.REPO, "vars/${step}.txt")
            assert f.isFile(): "missing ${f}"
            String page = f.text
            // Plain text: Jenkins' default markup formatter would show HTML tags as written.
            assert !(page =~ /<\/?(p|code|pre|dl|dt|dd|b|i)>/): "${step}.txt contains HTML"
            assert page.readLines().every { it.length() <= 110 }: "${step}.txt has overlong lines"
            Map<String, Map> e = entries(page)
            assert e.keySet() == Spec.params(step).keySet(): "${step}.txt documents ${e.keySet()}"
            Map defaults = ParamsTest.defaults(step)
            e.each { String name, Map entry ->
                String text = entry.text
                assert text.contains('Default:'): "${step}.txt: ${name} has no default"
                assert text.contains("Example: ${name}:"): "${step}.txt: ${name} has no example"
                Object d = defaults[name]
                if (d instanceof String || d instanceof Boolean) {
                    assert text.contains("Default: ${d}"): "${step}.txt: ${name}'s default is ${d}"
                }
                Map p = Spec.params(step)[name]
                assert entry.flag == p.flag: "${step}.txt: ${name} names flag ${entry.flag}, the step passes ${p.flag}"
                String want = [(Spec.STRING): 'String', (Spec.CREDENTIALS): 'String', (Spec.LIST): 'String or List', (Spec.BOOLEAN): 'Boolean',
                               (Spec.INTEGER): 'Integer', (Spec.DURATION): 'duration', (Spec.ENUM): 'String'][p.type]
                if (p.type == Spec.ENUM) {
                    assert ((List) p.values).every { entry.type.contains("'${it}'") }: "${step}.txt: ${name} lists ${entry.type}, accepted: ${p.values}"
                } else {
                    assert entry.type == want: "${step}.txt: ${name} is documented as ${entry.type}, accepted as ${want}"
                }
            }
            assert page.contains('Example:\n') && page.contains("${step}("): "${step}.txt has no example call"
        }
    }

    @Test
    void theEntryParserRejectsWhatItShould() {
        Map e = entries('  a (String; --a)\n    Text. Default: x.\n    Example: a: 1\n\n  b (Boolean)\n    More.\nnot an entry\n')
        assert e.keySet() == ['a', 'b'] as Set
        assert e.a == [type: 'String', flag: '--a', text: 'Text. Default: x. Example: a: 1']
        assert e.b.flag == null
    }
}
