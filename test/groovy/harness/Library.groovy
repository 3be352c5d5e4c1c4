package harness

import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

/**
 * A shared library checked out in a directory (vars/, src/, resources/), loaded as Jenkins
 * loads one: src/ on the classpath, each vars/<name>.groovy a script class named <name>,
 * resources read by libraryResource. Compiled once per directory and JVM.
 */
class Library {
    private static final Map<String, Library> CACHE = [:]

    final File root
    final CompilerConfiguration config
    final GroovyClassLoader loader
    final Map<String, Class> vars = new TreeMap<String, Class>()

    static synchronized Library load(File root) {
        String key = root.canonicalPath
        if (!CACHE.containsKey(key)) {
            CACHE[key] = new Library(root.canonicalFile)
        }
        return CACHE[key]
    }

    private Library(File root) {
        this.root = root
        config = new CompilerConfiguration()
        config.scriptBaseClass = PipelineScript.name
        ImportCustomizer imports = new ImportCustomizer()
        imports.addImports('com.cloudbees.groovy.cps.NonCPS') // as Jenkins' CpsGroovyShell does
        config.addCompilationCustomizers(imports)
        loader = new GroovyClassLoader(Library.classLoader, config)
        File src = new File(root, 'src')
        if (src.isDirectory()) {
            loader.addClasspath(src.path)
        }
        File varsDir = new File(root, 'vars')
        File[] files = varsDir.listFiles()
        for (File f : (files ?: new File[0])) {
            if (f.name.endsWith('.groovy')) {
                vars[f.name[0..-8]] = loader.parseClass(new GroovyCodeSource(f))
            }
        }
    }

    String resource(String path) {
        File f = new File(root, 'resources/' + path)
        if (!f.isFile()) {
            throw new PipelineError("No such library resource ${path} could be found.")
        }
        return f.getText('UTF-8')
    }

    /** A Jenkinsfile compiled against this library, its @Library lines checked and removed. */
    PipelineScript parse(String text, String name, List<String> libraryRefs) {
        StringBuilder kept = new StringBuilder()
        for (String line : text.split('\n', -1)) {
            def m = line =~ /^\s*@Library\(\s*['"]([^'"]+)['"]\s*\)\s*_?\s*$/
            if (m.matches()) {
                libraryRefs.add(m.group(1))
                kept.append('\n') // keep line numbers
            } else {
                kept.append(line).append('\n')
            }
        }
        return (PipelineScript) new GroovyShell(loader, new Binding(), config).parse(kept.toString(), name)
    }
}
