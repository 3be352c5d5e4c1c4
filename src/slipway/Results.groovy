package slipway

import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonSlurperClassic

/**
 * Reading what the binary wrote. JsonSlurperClassic returns plain HashMaps and ArrayLists
 * (serializable, unlike JsonSlurper's LazyMap), and the parsing runs @NonCPS; every step
 * returns maps built here.
 */
class Results implements Serializable {
    private static final long serialVersionUID = 1L

    @NonCPS
    static Object parse(String text) {
        if (text == null || text.trim().isEmpty()) {
            return null
        }
        return new JsonSlurperClassic().parseText(text)
    }

    /** Like parse(), but null for text that is not JSON (the step reports the exit code instead). */
    @NonCPS
    static Object parseOrNull(String text) {
        try {
            return parse(text)
        } catch (Exception ignored) {
            return null
        }
    }

    /**
     * The release a step returns, from the manifest (slipway-release.json):
     * project, commit, shortCommit, branch, dirty, buildUrl, manifest (path), pinned (path,
     * after push), services (name -> image, tags, imageId, digest), images (name -> the
     * reference to run: repo@digest once pushed, else repo:firstTag), tags (name -> list),
     * digests (name -> digest, pushed services only).
     */
    @NonCPS
    static Map release(Object manifest, String manifestPath) {
        Map m = manifest instanceof Map ? (Map) manifest : [:]
        Map out = new LinkedHashMap()
        for (String k : ['project', 'commit', 'shortCommit', 'branch', 'dirty', 'buildUrl']) {
            out.put(k, m[k])
        }
        out.manifest = manifestPath
        out.pinned = m.pinnedCompose ?: null
        Map services = new LinkedHashMap(), images = new LinkedHashMap(), tags = new LinkedHashMap(), digests = new LinkedHashMap()
        Map declared = m.services instanceof Map ? (Map) m.services : [:]
        for (Object name : new TreeSet(declared.keySet())) {
            Map s = declared[name] instanceof Map ? (Map) declared[name] : [:]
            List t = s.tags instanceof List ? new ArrayList((List) s.tags) : []
            String image = s.image ? s.image.toString() : ''
            String digest = s.digest ? s.digest.toString() : null
            String ref = digest ? "${image}@${digest}" : (t ? "${image}:${t[0]}" : image)
            services.put(name, [image: image, tags: t, imageId: s.imageId, digest: digest, ref: ref.toString()])
            images.put(name, ref.toString())
            tags.put(name, t)
            if (digest) {
                digests.put(name, digest)
            }
        }
        out.services = services
        out.images = images
        out.tags = tags
        out.digests = digests
        return out
    }

    /** Per-host results of deploy/rollback --json: the "hosts" the binary reports, as a map by host. */
    @NonCPS
    static Map hosts(Object report) {
        Map out = new LinkedHashMap()
        Object hs = report instanceof Map ? ((Map) report).hosts : report
        if (hs instanceof Map) {
            out.putAll((Map) hs)
        } else if (hs instanceof List) {
            int i = 0
            for (Object h : (List) hs) {
                String key = h instanceof Map && ((Map) h).host ? ((Map) h).host.toString() : "host${i}".toString()
                out.put(key, h)
                i++
            }
        }
        return out
    }

    /** deploy/rollback's result Map: exitCode, status, release, hosts, report, message, rolledBack (exit 4). */
    @NonCPS
    static Map outcome(int status, Object report, String message) {
        Map r = report instanceof Map ? (Map) report : [:]
        return [exitCode: status, status: r.status, release: r.release, hosts: hosts(report), report: report,
                message : message, rolledBack: status == 4]
    }

    /** One line for the build description: what ran where and how it ended. */
    @NonCPS
    static String describe(String step, int status, Object report) {
        Map r = report instanceof Map ? (Map) report : [:]
        String verb = step == 'rollbackCompose' ? 'rollback' : 'deploy'
        String release = r.release ? " of ${r.release}" : ''
        String where = hosts(report).keySet() ? " to ${hosts(report).keySet().join(', ')}" : ''
        switch (status) {
            case 0: return "${verb}${release}${where}: done".toString()
            case 4: return "${verb}${release}${where} FAILED: rolled back, every host on its previous release (exit 4)".toString()
            case 5: return "${verb}${release}${where} FAILED: hosts LEFT CHANGED, check them now (exit 5)".toString()
            default: return "${verb}${release}${where} FAILED (exit ${status}: ${Spec.exitMeaning(status)})".toString()
        }
    }

    /** The pinned version file (resources/slipway/release.json), checked for the fields we use. */
    @NonCPS
    static Map pinned(String text) {
        Object o = parse(text)
        if (!(o instanceof Map) || !((Map) o).version || !((Map) o).url || !(((Map) o).platforms instanceof Map)) {
            throw new IllegalStateException('resources/slipway/release.json must hold version, url and platforms')
        }
        return (Map) o
    }
}
