package harness

/**
 * Splits a POSIX shell command line into words the way sh would (single quotes, double
 * quotes with $VAR / ${VAR} / ${VAR:+word} and backslash escapes, plain words). With env ==
 * null, expansions are kept as written ("$X" stays "$X"), which lets tests compare argv.
 */
class ShellWords {
    static List<String> split(String line, Map env = null) {
        List<String> words = []
        StringBuilder cur = null
        int i = 0
        int n = line.length()
        while (i < n) {
            char c = line.charAt(i)
            if (c == ' ' as char || c == '\t' as char) {
                if (cur != null) {
                    words.add(cur.toString())
                    cur = null
                }
                i++
                continue
            }
            if (cur == null) {
                cur = new StringBuilder()
            }
            if (c == '\'' as char) {
                int end = line.indexOf('\'', i + 1)
                if (end < 0) {
                    throw new IllegalArgumentException("unterminated single quote in: ${line}")
                }
                cur.append(line, i + 1, end)
                i = end + 1
            } else if (c == '"' as char) {
                i++
                while (i < n && line.charAt(i) != '"' as char) {
                    char d = line.charAt(i)
                    if (d == '\\' as char && i + 1 < n && '$`"\\\n'.indexOf((int) line.charAt(i + 1)) >= 0) {
                        cur.append(line.charAt(i + 1))
                        i += 2
                    } else if (d == '$' as char) {
                        i = expand(line, i, env, cur)
                    } else {
                        cur.append(d)
                        i++
                    }
                }
                if (i >= n) {
                    throw new IllegalArgumentException("unterminated double quote in: ${line}")
                }
                i++
            } else if (c == '\\' as char && i + 1 < n) {
                cur.append(line.charAt(i + 1))
                i += 2
            } else if (c == '$' as char) {
                i = expand(line, i, env, cur)
            } else {
                cur.append(c)
                i++
            }
        }
        if (cur != null) {
            words.add(cur.toString())
        }
        return words
    }

    // $NAME, ${NAME} or ${NAME:+word} at i; appends the expansion (or the text itself when
    // env is null) and returns the index after it.
    private static int expand(String line, int i, Map env, StringBuilder out) {
        int j
        String expr
        if (i + 1 < line.length() && line.charAt(i + 1) == '{' as char) {
            j = line.indexOf('}', i)
            expr = line.substring(i + 2, j)
            j++
        } else {
            j = i + 1
            while (j < line.length() && (Character.isLetterOrDigit(line.charAt(j)) || line.charAt(j) == '_' as char)) {
                j++
            }
            expr = line.substring(i + 1, j)
        }
        if (env == null) {
            out.append(line, i, j)
            return j
        }
        int alt = expr.indexOf(':+')
        if (alt >= 0) {
            String name = expr.substring(0, alt)
            if (env[name]) {
                List<String> inner = split('"' + expr.substring(alt + 2) + '"', env)
                out.append(inner ? inner[0] : '')
            }
        } else {
            out.append(env[expr] ?: '')
        }
        return j
    }
}
