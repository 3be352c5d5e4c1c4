package slipway

import com.cloudbees.groovy.cps.NonCPS

/**
 * Named-parameter checking for every step: unknown keys (with a did-you-mean), types,
 * required and mutually exclusive parameters. check() never calls a pipeline step: it
 * returns [error: message] or [values: merged map], and the step calls error() itself.
 */
class Params implements Serializable {
    private static final long serialVersionUID = 1L

    @NonCPS
    static Map check(String step, Map defaults, Object given) {
        Map spec = Spec.params(step)
        if (!new HashSet(defaults.keySet()).equals(new HashSet(spec.keySet()))) {
            // A library bug, not a user error: the step's defaults and Spec disagree.
            Set missing = new TreeSet(spec.keySet()); missing.removeAll(defaults.keySet())
            Set extra = new TreeSet(defaults.keySet()); extra.removeAll(spec.keySet())
            throw new IllegalStateException("${step}: defaults and Spec disagree (no default for ${missing}, no spec for ${extra})")
        }
        if (given == null) {
            given = [:]
        }
        if (!(given instanceof Map)) {
            return [error: "${step}: parameters are named, like ${step}(manifest: 'slipway-release.json'); got ${typeName(given)} ${shown(given)}".toString()]
        }
        Map values = new LinkedHashMap()
        for (Map.Entry e : defaults.entrySet()) {
            values.put(e.key, e.value instanceof List ? new ArrayList((List) e.value) : e.value)
        }
        for (Map.Entry e : ((Map) given).entrySet()) {
            String key = e.key == null ? 'null' : e.key.toString()
            if (!spec.containsKey(key)) {
                return [error: unknown(step, key, spec.keySet())]
            }
            if (e.value == null) {
                continue // explicit null: the default applies
            }
            Map r = normalize(step, key, (Map) spec[key], e.value)
            if (r.error) {
                return r
            }
            values.put(key, r.value)
        }
        for (Map.Entry e : spec.entrySet()) {
            String other = ((Map) e.value).exclusive
            if (other && isSet(values[e.key]) && isSet(values[other])) {
                return [error: "${step}: give either '${e.key}' or '${other}', not both".toString()]
            }
        }
        for (Object group : Spec.oneOf(step)) {
            boolean any = false
            for (Object name : (List) group) {
                any = any || isSet(values[name])
            }
            if (!any) {
                List names = (List) group
                String alternatives = names.size() > 1 ? " (or '${names.subList(1, names.size()).join("' or '")}')" : ''
                return [error: "${step}: missing required parameter '${names[0]}'${alternatives}".toString()]
            }
        }
        return [values: values]
    }

    /** The error for a step called with a positional argument, like pushImages('x'). */
    @NonCPS
    static String positional(String step, Object given) {
        return (String) check(step, Spec.params(step), given).error
    }

    /** Whether a parameter value counts as given: not null, not '', not [], not false. */
    @NonCPS
    static boolean isSet(Object v) {
        if (v == null || v == false) {
            return false
        }
        if (v instanceof CharSequence) {
            return v.toString().length() > 0
        }
        if (v instanceof Collection) {
            return !((Collection) v).isEmpty()
        }
        return true
    }

    @NonCPS
    static String unknown(String step, String key, Collection known) {
        String best = null
        int bestDistance = Integer.MAX_VALUE
        for (Object k : known) {
            int d = distance(key.toLowerCase(), k.toString().toLowerCase())
            if (d < bestDistance) {
                best = k.toString()
                bestDistance = d
            }
        }
        int limit = Math.max(2, (int) (key.length() / 3))
        if (best != null && bestDistance <= limit) {
            return "${step}: unknown parameter '${key}' (did you mean '${best}'?)".toString()
        }
        // A part of a longer name ('credentialsId' for 'registryCredentialsId').
        List containing = []
        for (Object k : known) {
            if (key.length() >= 3 && k.toString().toLowerCase().contains(key.toLowerCase())) {
                containing.add("'${k}'".toString())
            }
        }
        if (containing) {
            return "${step}: unknown parameter '${key}' (did you mean ${containing.join(' or ')}?)".toString()
        }
        return "${step}: unknown parameter '${key}' (known: ${known.join(', ')})".toString()
    }

    /** Levenshtein distance: insertions, deletions and substitutions cost 1. */
    @NonCPS
    static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1]
        int[] cur = new int[b.length() + 1]
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost)
            }
            int[] t = prev; prev = cur; cur = t
        }
        return prev[b.length()]
    }

    @NonCPS
    private static Map normalize(String step, String key, Map p, Object v) {
        String where = "${step}: parameter '${key}'"
        switch (p.type) {
            case Spec.STRING:
            case Spec.CREDENTIALS:
                if (!(v instanceof CharSequence)) {
                    return bad(where, 'a String', v)
                }
                String s = v.toString()
                if ((p.nonEmpty || p.type == Spec.CREDENTIALS) && s.isEmpty()) {
                    return [error: "${where} must not be empty".toString()]
                }
                return text(where, s)
            case Spec.LIST:
                List out = []
                if (v instanceof CharSequence) {
                    out.add(v.toString())
                } else if (v instanceof Collection || v instanceof Object[]) {
                    int i = 0
                    for (Object el : (v as List)) {
                        i++
                        if (!(el instanceof CharSequence)) {
                            return [error: "${where} must be a String or a List of Strings; item ${i} is ${typeName(el)} ${shown(el)}".toString()]
                        }
                        out.add(el.toString())
                    }
                } else {
                    return bad(where, 'a String or a List of Strings', v)
                }
                for (Object s : out) {
                    Map r = text(where, (String) s)
                    if (r.error) {
                        return r
                    }
                }
                return [value: out]
            case Spec.BOOLEAN:
                if (!(v instanceof Boolean)) {
                    Map r = bad(where, 'a Boolean (true or false)', v)
                    if (v instanceof CharSequence && v.toString().toLowerCase() in ['true', 'false']) {
                        // 'false' would be truthy in Groovy: refused, with the fix.
                        r.error = "${r.error} (write ${key}: ${v.toString().toLowerCase()} without quotes; a job parameter: params.X.toBoolean())".toString()
                    }
                    return r
                }
                return [value: v]
            case Spec.INTEGER:
                Integer n = null
                if (v instanceof Integer || v instanceof Long || v instanceof Short) {
                    n = ((Number) v).intValue()
                } else if (v instanceof CharSequence && v.toString() ==~ /[0-9]{1,9}/) {
                    n = Integer.valueOf(v.toString()) // job parameters arrive as Strings
                } else {
                    return bad(where, 'an Integer', v)
                }
                if (p.min != null && n < (int) p.min) {
                    return [error: "${where} must be at least ${p.min}; got ${n}".toString()]
                }
                return [value: n]
            case Spec.DURATION:
                if ((v instanceof Integer || v instanceof Long) && ((Number) v).longValue() >= 0) {
                    return [value: "${v}s".toString()]
                }
                if (v instanceof CharSequence && (v.toString() ==~ /0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+/)) {
                    return [value: v.toString()]
                }
                return bad(where, "a duration like '90s', '5m' or '1h30m' (or a number of seconds)", v)
            case Spec.ENUM:
                List allowed = (List) p.values
                if (!(v instanceof CharSequence) || !allowed.contains(v.toString())) {
                    return [error: "${where} must be one of '${allowed.join("', '")}'; got ${typeName(v)} ${shown(v)}".toString()]
                }
                return [value: v.toString()]
            default:
                throw new IllegalStateException("${where}: unknown type ${p.type}")
        }
    }

    @NonCPS
    private static Map text(String where, String s) {
        if (s.indexOf('\u0000') >= 0) {
            return [error: "${where} contains a NUL character".toString()]
        }
        return [value: s]
    }

    @NonCPS
    private static Map bad(String where, String want, Object v) {
        return [error: "${where} must be ${want}; got ${typeName(v)} ${shown(v)}".toString()]
    }

    @NonCPS
    static String typeName(Object v) {
        if (v == null) {
            return 'null'
        }
        if (v instanceof CharSequence) {
            return 'String'
        }
        if (v instanceof List) {
            return 'List'
        }
        if (v instanceof Map) {
            return 'Map'
        }
        return v.getClass().getSimpleName()
    }

    @NonCPS
    private static String shown(Object v) {
        String s = v instanceof CharSequence ? "'${v}'" : "${v}"
        return s.length() > 60 ? s.substring(0, 57) + '...' : s
    }
}
