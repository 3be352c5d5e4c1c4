import groovy.json.JsonOutput
import harness.Harness
import org.junit.Test

class SmokeTest {
    @Test
    void buildImagesRunsTheBinary() {
        Harness h = Fixture.recording()
        FakeAgent a = new FakeAgent(h)
        a.onRun = { h.seed('slipway-release.json', JsonOutput.toJson(Fixture.manifest())) }
        Map r = (Map) h.callStep('buildImages', [pull: true])
        assert a.lastArgv()[1..-1] == ['build', '--pull', '--manifest', 'slipway-release.json']
        assert r.images == [api: "reg.example/shop-api:${Fixture.COMMIT}".toString()]
    }
}
