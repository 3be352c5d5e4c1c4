import org.junit.Test
import slipway.Spec

/** Each step's .txt help page (shown by Jenkins under Global Variables Reference) documents every parameter. */
class HelpPagesTest {
    static final List<String> STEPS = ['buildImages', 'runTests', 'pushImages', 'deployCompose', 'rollbackCompose']

    @Test
    void everyParameterHasAnEntryWithItsDefaultAndAnExample() {
        for (String step : STEPS) {
            File f = new File(Fixture.REPO, "vars/${step}.txt")
            assert f.isFile(): "missing ${f}"
            // Well-formed XHTML, so Jenkins renders it as written.
            def page = new XmlSlurper().parseText("<div>${f.text}</div>")
            Map<String, String> entries = [:]
            List dts = page.'**'.findAll { it.name() == 'dt' }
            List dds = page.'**'.findAll { it.name() == 'dd' }
            assert dts.size() == dds.size()
            dts.eachWithIndex { dt, i -> entries[dt.code[0].text()] = dds[i].text().replaceAll(/\s+/, ' ') }
            assert entries.keySet() == Spec.params(step).keySet(): "${step}.txt documents ${entries.keySet()}"
            Map defaults = ParamsTest.defaults(step)
            entries.each { String name, String text ->
                assert text.contains('Default:'): "${step}.txt: ${name} has no default"
                assert text.contains("Example: ${name}:"): "${step}.txt: ${name} has no example"
                Object d = defaults[name]
                if (d instanceof String || d instanceof Boolean) {
                    assert text.contains("Default: ${d}"): "${step}.txt: ${name}'s default is ${d}"
                }
                Map p = Spec.params(step)[name]
                if (p.flag) {
                    assert text.contains(p.flag) || f.text.contains("<code>${p.flag}</code>"): "${step}.txt: ${name} does not name ${p.flag}"
                }
            }
            assert page.pre.text().contains("${step}("): "${step}.txt has no example call"
        }
    }
}
