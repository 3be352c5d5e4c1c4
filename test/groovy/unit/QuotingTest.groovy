import org.junit.Test
import slipway.Shell

/**
 * Shell.quote is the only way a value enters a script. Property: for random strings full of
 * quotes, $, backticks, backslashes, newlines, spaces, globs and non-ASCII, the real /bin/sh
 * turns `printf %s <quoted>` back into exactly the string, and nothing in it executes.
 */
class QuotingTest {
    static final String ALPHABET = "'\"\$`\\\n\t *?[]{}()<>|&;#~!%=^,.:/@+-_aZ09é€\u00a0\r"

    static String runSh(String script) {
        Process p = new ProcessBuilder('/bin/sh', '-c', script).redirectErrorStream(false).start()
        p.outputStream.close()
        String out = p.inputStream.getText('UTF-8')
        String err = p.errorStream.getText('UTF-8')
        assert p.waitFor() == 0: "sh failed: ${err}"
        return out
    }

    @Test
    void randomStringsSurviveShUnchangedAndNeverExecute() {
        Random rnd = new Random(20240611L)
        File canary = File.createTempFile('slipway-quote-canary', '')
        canary.delete()
        List<String> samples = [
                '', ' ', "'", "''", '"', '\\', '$HOME', '${HOME}', '$(touch ' + canary + ')', '`touch ' + canary + '`',
                "it's", "a'b'c", "\n", "a\nb", '-n', '-e', '--flag=value', '*', '~', 'x=y', "'\$(touch ${canary})'", '!$', "\\'"]
        for (int i = 0; i < 400; i++) {
            int len = rnd.nextInt(24)
            StringBuilder b = new StringBuilder()
            for (int j = 0; j < len; j++) {
                b.append(ALPHABET.charAt(rnd.nextInt(ALPHABET.length())))
            }
            // Half of them carry a command substitution aimed at the canary file.
            if (rnd.nextBoolean()) {
                b.insert(rnd.nextInt(b.length() + 1), rnd.nextBoolean() ? "\$(touch ${canary})" : "`touch ${canary}`")
            }
            samples.add(b.toString())
        }
        // One sh per batch; printf '%s\0' keeps even trailing newlines exact.
        for (List<String> batch : samples.collate(50)) {
            String script = "printf '%s\\0' " + batch.collect { Shell.quote(it) }.join(' ')
            List<String> got = runSh(script).split('\u0000', -1).toList()
            got = got.subList(0, got.size() - 1)
            assert got.size() == batch.size()
            for (int i = 0; i < batch.size(); i++) {
                assert got[i] == batch[i]: "quote(${batch[i].inspect()}) = ${Shell.quote(batch[i])} came back as ${got[i].inspect()}"
            }
        }
        assert !canary.exists(): 'a quoted value executed a command'
    }

    @Test
    void plainWordsStayReadableAndEverythingElseIsSingleQuoted() {
        assert Shell.quote('docker-compose.yml') == 'docker-compose.yml'
        assert Shell.quote('reg.example:5000/shop') == 'reg.example:5000/shop'
        assert Shell.quote('deploy@10.0.0.1:2222') == 'deploy@10.0.0.1:2222'
        assert Shell.quote('') == "''"
        assert Shell.quote('a b') == "'a b'"
        assert Shell.quote("it's") == "'it'\\''s'"
        assert Shell.quote('{{.Commit}}') == "'{{.Commit}}'"
        assert Shell.quote('x=y') == "'x=y'"   // never an assignment
        assert Shell.quote('~/x') == "'~/x'"   // never a tilde expansion
        assert Shell.quote(42) == '42'
    }

    @Test
    void nulIsRefusedBecauseNoShellWordCanHoldIt() {
        try {
            Shell.quote('a\u0000b')
            assert false: 'expected an exception'
        } catch (IllegalArgumentException e) {
            assert e.message.contains('NUL')
        }
    }

    @Test
    void envReferencesAreDoubleQuotedAndOnlyForVariableNames() {
        assert Shell.env('SLIPWAY_SSH_KEY_FILE') == '"$SLIPWAY_SSH_KEY_FILE"'
        try {
            Shell.env('X; rm -rf /')
            assert false
        } catch (IllegalArgumentException e) {
            assert e.message.contains('not an environment variable name')
        }
    }
}
