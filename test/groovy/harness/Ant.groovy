package harness

import java.util.regex.Pattern

/** Ant-style patterns as junit, archiveArtifacts and stash take them ("a/**\/*.xml,b.txt"). */
class Ant {
    static Pattern regex(String pattern) {
        StringBuilder b = new StringBuilder()
        String p = pattern.trim()
        int i = 0
        while (i < p.length()) {
            char c = p.charAt(i)
            if (p.startsWith('**/', i)) {
                b.append('(?:.*/)?')
                i += 3
            } else if (p.startsWith('**', i)) {
                b.append('.*')
                i += 2
            } else if (c == '*' as char) {
                b.append('[^/]*')
                i++
            } else if (c == '?' as char) {
                b.append('[^/]')
                i++
            } else {
                b.append(Pattern.quote(String.valueOf(c)))
                i++
            }
        }
        if (p.endsWith('/')) {
            b.append('.*') // "dir/" means everything under dir
        }
        return Pattern.compile(b.toString())
    }

    /** The relative paths among `paths` that match any of the comma-separated patterns. */
    static List<String> match(String patterns, Collection<String> paths, String excludes = null) {
        List<Pattern> inc = []
        for (String s : (patterns ?: '').split(',')) {
            if (s.trim()) {
                inc.add(regex(s))
            }
        }
        List<Pattern> exc = []
        for (String s : (excludes ?: '').split(',')) {
            if (s.trim()) {
                exc.add(regex(s))
            }
        }
        List<String> out = []
        for (String path : new TreeSet<String>(paths)) {
            if (inc.any { it.matcher(path).matches() } && !exc.any { it.matcher(path).matches() }) {
                out.add(path)
            }
        }
        return out
    }
}
