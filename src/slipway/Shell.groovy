package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * The one way a value reaches a `sh` script. Every word the library puts in a script goes
 * through quote(); the only unquoted text is the library's own fixed shell and references to
 * environment variables made by env(), which is how secrets reach the binary.
 */
class Shell implements Serializable {
    private static final long serialVersionUID = 1L

    /**
     * One POSIX shell word that the shell turns back into exactly `word`: the word itself when
     * it holds only characters no shell treats specially, else single-quoted with each embedded
     * single quote written as '\'' (close, escaped quote, reopen). Inside single quotes
     * nothing is special: no $, no backticks, no backslashes, newlines kept.
     */
    @NonCPS
    static String quote(Object word) {
        String s = word == null ? '' : word.toString()
        if (s.indexOf('\u0000') >= 0) {
            // No shell word can carry a NUL: refuse rather than silently truncate.
            throw new IllegalArgumentException('a shell argument cannot contain a NUL character')
        }
        if (s.length() > 0 && isPlain(s)) {
            return s
        }
        return "'" + s.replace("'", "'\\''") + "'"
    }

    /** The double-quoted reference "$NAME": the shell expands it, Groovy never sees the value. */
    @NonCPS
    static String env(String name) {
        if (!(name ==~ /[A-Za-z_][A-Za-z0-9_]*/)) {
            throw new IllegalArgumentException("not an environment variable name: ${name}")
        }
        return '"$' + name + '"'
    }

    /** Words joined into one command line. */
    @NonCPS
    static String join(List words) {
        StringBuilder b = new StringBuilder()
        for (Object w : words) {
            if (b.length() > 0) {
                b.append(' ')
            }
            b.append(w.toString())
        }
        return b.toString()
    }

    // Letters, digits and _ / . , : @ % + - are plain in every POSIX shell position we use
    // ('=' is left out: a first word like A=b would be an assignment; '~' would expand).
    @NonCPS
    private static boolean isPlain(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i)
            boolean ok = (c >= ('a' as char) && c <= ('z' as char)) || (c >= ('A' as char) && c <= ('Z' as char)) ||
                    (c >= ('0' as char) && c <= ('9' as char)) || '_/.,:@%+-'.indexOf((int) c) >= 0
            if (!ok) {
                return false
            }
        }
        return true
    }
}
