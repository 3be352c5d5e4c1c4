import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.ConstructorNode
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ClassExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstructorCallExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit
import org.junit.Test

/**
 * Jenkins runs library code under CPS, which the harness does not emulate; these rules are
 * checked on the source instead: outside @NonCPS methods, no closure is handed to a
 * collection method (each, collect, findAll...), no regex Matcher is made (=~, .matcher()),
 * no non-serializable local (Matcher, Iterator, readers...) can live across a step, and
 * nothing uses JsonSlurper (LazyMap is not serializable); @NonCPS methods call no pipeline
 * step and no CPS method of the library (both misbehave at run time, not at compile time);
 * constructors call no step (CPS does not transform them); every class in src/ is Serializable.
 */
class CpsRulesTest {
    static final Set<String> ITERATING = ['each', 'eachWithIndex', 'collect', 'collectEntries', 'collectMany', 'find', 'findAll',
                                          'findResult', 'findResults', 'any', 'every', 'inject', 'sort', 'toSorted', 'groupBy', 'count',
                                          'sum', 'min', 'max', 'unique', 'removeAll', 'retainAll', 'eachLine', 'times', 'upto',
                                          'downto', 'step', 'withIndex', 'split', 'with', 'tap', 'countBy', 'takeWhile', 'dropWhile'] as Set

    // Pipeline steps the library calls (on `steps.` in src/, bare in vars/).
    static final Set<String> STEPS = ['sh', 'echo', 'error', 'readFile', 'writeFile', 'fileExists', 'withCredentials', 'dir', 'stash',
                                      'unstash', 'sleep', 'archiveArtifacts', 'junit', 'pwd', 'isUnix', 'libraryResource', 'unstable',
                                      'usernamePassword', 'sshUserPrivateKey', 'file', 'withEnv', 'timeout', 'retry'] as Set
    static final Set<String> NON_SERIALIZABLE = ['Matcher', 'java.util.regex.Matcher', 'Iterator', 'ListIterator', 'Scanner', 'BufferedReader',
                                                 'Reader', 'InputStream', 'OutputStream', 'JsonSlurper', 'LazyMap', 'Process'] as Set

    /** Class name -> names of its CPS (not @NonCPS) methods, over the given sources. */
    static Map<String, Set<String>> cpsMethods(List<String> texts) {
        Map<String, Set<String>> out = [:]
        for (String text : texts) {
            CompilationUnit cu = new CompilationUnit()
            SourceUnit su = cu.addSource('x.groovy', text)
            cu.compile(Phases.CONVERSION)
            for (ClassNode cls : su.AST.classes) {
                for (MethodNode m : cls.methods) {
                    if (!m.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' }) {
                        out.get(cls.nameWithoutPackage, [] as Set).add(m.name)
                    }
                }
            }
        }
        return out
    }

    static List<File> librarySources() {
        List<File> files = []
        new File(Fixture.REPO, 'vars').eachFileMatch(~/.*\.groovy/) { files.add(it) }
        new File(Fixture.REPO, 'src').eachFileRecurse { if (it.name.endsWith('.groovy')) files.add(it) }
        assert files.size() >= 5 + 7
        return files
    }

    /** Violations in one source text: "file:line: what". others: the rest of the library (cpsMethods). */
    static List<String> violations(String name, String text, Map<String, Set<String>> others = [:]) {
        CompilationUnit cu = new CompilationUnit()
        SourceUnit su = cu.addSource(name, text)
        cu.compile(Phases.CONVERSION)
        Map<String, Set<String>> cps = new LinkedHashMap<String, Set<String>>(others)
        cps.putAll(cpsMethods([text]))
        List<String> found = []
        for (ClassNode cls : su.AST.classes) {
            boolean script = cls.isScript()
            if (!script && !cls.name.contains('$') && !cls.interfaces*.name.any { it in ['Serializable', 'java.io.Serializable'] }) {
                found.add("${name}: class ${cls.name} is not Serializable")
            }
            for (ConstructorNode c : cls.declaredConstructors) {
                c.code?.visit(new ClassCodeVisitorSupport() {
                    protected SourceUnit getSourceUnit() { return su }

                    void visitMethodCallExpression(MethodCallExpression call) {
                        if (isStep(call, script)) {
                            found.add(at(name, call, "step ${call.methodAsString} called in a constructor of ${cls.nameWithoutPackage} (CPS does not transform constructors)"))
                        }
                        super.visitMethodCallExpression(call)
                    }
                })
            }
            for (MethodNode m : cls.methods) {
                boolean nonCps = m.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' }
                if (m.code == null) {
                    continue
                }
                if (nonCps) {
                    m.code.visit(new ClassCodeVisitorSupport() {
                        protected SourceUnit getSourceUnit() { return su }

                        void visitMethodCallExpression(MethodCallExpression call) {
                            if (isStep(call, script)) {
                                found.add(at(name, call, "step ${call.methodAsString} called from @NonCPS method ${m.name}"))
                            }
                            String owner = ownerClass(call, cls)
                            if (owner != null && cps[owner]?.contains(call.methodAsString)) {
                                found.add(at(name, call, "@NonCPS method ${m.name} calls CPS method ${owner}.${call.methodAsString}"))
                            }
                            super.visitMethodCallExpression(call)
                        }
                    })
                    continue
                }
                m.code.visit(new ClassCodeVisitorSupport() {
                    protected SourceUnit getSourceUnit() { return su }

                    void visitMethodCallExpression(MethodCallExpression call) {
                        if (call.methodAsString in ITERATING && call.arguments instanceof ArgumentListExpression &&
                                ((ArgumentListExpression) call.arguments).expressions.any { it instanceof ClosureExpression }) {
                            found.add(at(name, call, "closure passed to .${call.methodAsString}() in CPS method ${m.name}"))
                        }
                        if (call.methodAsString in ['matcher', 'iterator', 'listIterator']) {
                            found.add(at(name, call, "non-serializable .${call.methodAsString}() in CPS method ${m.name}"))
                        }
                        super.visitMethodCallExpression(call)
                    }

                    void visitDeclarationExpression(DeclarationExpression e) {
                        if (!e.isMultipleAssignmentDeclaration()) {
                            VariableExpression v = e.variableExpression
                            if (v.originType.nameWithoutPackage in NON_SERIALIZABLE || v.originType.name in NON_SERIALIZABLE) {
                                found.add(at(name, e, "non-serializable local ${v.name} (${v.originType.nameWithoutPackage}) in CPS method ${m.name}"))
                            }
                        }
                        super.visitDeclarationExpression(e)
                    }

                    void visitBinaryExpression(BinaryExpression e) {
                        if (e.operation.text == '=~') {
                            found.add(at(name, e, "regex Matcher (=~) in CPS method ${m.name}"))
                        }
                        super.visitBinaryExpression(e)
                    }

                    void visitConstructorCallExpression(ConstructorCallExpression call) {
                        if (call.type.nameWithoutPackage == 'JsonSlurper') {
                            found.add(at(name, call, 'JsonSlurper (LazyMap is not serializable): use JsonSlurperClassic'))
                        }
                        super.visitConstructorCallExpression(call)
                    }
                })
            }
        }
        if (text.contains('JsonSlurper()') || text =~ /import\s+groovy\.json\.JsonSlurper\s*$/) {
            found.add("${name}: uses JsonSlurper")
        }
        return found
    }

    /** A pipeline step call: steps.sh(...) in a class, or a bare sh(...) in a vars script. */
    static boolean isStep(MethodCallExpression call, boolean script) {
        if (!(call.methodAsString in STEPS)) {
            return false
        }
        if (call.objectExpression instanceof VariableExpression) {
            String target = ((VariableExpression) call.objectExpression).name
            return target == 'steps' || (script && target == 'this')
        }
        return call.objectExpression.text == 'steps' || call.objectExpression.text == 'this.steps'
    }

    /** The library class a call goes to: Foo.m() -> Foo, m()/this.m() -> the enclosing class. */
    static String ownerClass(MethodCallExpression call, ClassNode cls) {
        if (call.objectExpression instanceof ClassExpression) {
            return call.objectExpression.type.nameWithoutPackage
        }
        if (call.objectExpression instanceof VariableExpression) {
            String n = ((VariableExpression) call.objectExpression).name
            // Before semantic analysis Params.isSet(...) is a variable named Params.
            return n == 'this' ? cls.nameWithoutPackage : (Character.isUpperCase(n.charAt(0)) ? n : null)
        }
        return null
    }

    static String at(String name, ASTNode n, String what) {
        return "${name}:${n.lineNumber}: ${what}".toString()
    }

    @Test
    void theLibraryFollowsTheCpsRules() {
        List<String> found = []
        Map<String, Set<String>> all = cpsMethods(librarySources()*.text)
        for (File f : librarySources()) {
            found.addAll(violations(f.path - (Fixture.REPO.path + '/'), f.text, all))
        }
        assert found == []
    }

    @Test
    void theCheckerCatchesEachKindOfViolation() {
        String bad = '''
            import groovy.json.JsonSlurper
            class Bad implements Serializable {
                def steps
                def run(List hosts) {
                    hosts.each { steps.sh "ssh ${it} true" }
                    def m = ('a' =~ /a/)
                    return new JsonSlurper().parseText('{}')
                }
                @NonCPS
                static List fine(List xs) { return xs.collect { it * 2 } }
            }
            class NotSerializable { }
        '''
        List<String> found = violations('Bad.groovy', bad)
        assert found.any { it.contains('closure passed to .each() in CPS method run') }
        assert found.any { it.contains('regex Matcher (=~) in CPS method run') }
        assert found.any { it.contains('JsonSlurper (LazyMap is not serializable)') }
        assert found.any { it.contains('class NotSerializable is not Serializable') }
        assert !found.any { it.contains('fine') }
    }

    /** A real library file changed by one edit: the checker must report it. */
    static List<String> mutant(String path, String from, String to) {
        File f = new File(Fixture.REPO, path)
        String text = f.text
        assert text.contains(from): "${path} no longer contains ${from}"
        List<File> rest = librarySources().findAll { it.canonicalPath != f.canonicalPath }
        Map<String, Set<String>> others = cpsMethods(rest*.text)
        assert violations(path, text, others) == []
        return violations(path, text.replace(from, to), others)
    }

    @Test
    void theCheckerCatchesSeededMutantsOfTheLibrary() {
        // @NonCPS removed from Params.isSet: check() (@NonCPS) would call a CPS method.
        assert mutant('src/slipway/Params.groovy', '@NonCPS\n    static boolean isSet', 'static boolean isSet')
                .any { it.contains('@NonCPS method check calls CPS method Params.isSet') }
        // A regex Matcher held across a step in CPS code.
        assert mutant('src/slipway/Runner.groovy', '        String bin = new Binary(steps, step).obtain((String) values.tool)\n',
                '        def m = java.util.regex.Pattern.compile("x").matcher("x")\n        String bin = new Binary(steps, step).obtain((String) values.tool)\n')
                .any { it.contains('non-serializable .matcher() in CPS method run') }
        assert mutant('src/slipway/Runner.groovy', '        String bin = new Binary(steps, step).obtain((String) values.tool)\n',
                '        java.util.regex.Matcher m = null\n        String bin = new Binary(steps, step).obtain((String) values.tool)\n')
                .any { it.contains('non-serializable local m (Matcher) in CPS method run') }
        // A step in a constructor.
        assert mutant('src/slipway/Binary.groovy', '        this.step = step\n', '        this.step = step\n        steps.echo("obtaining")\n')
                .any { it.contains('step echo called in a constructor of Binary') }
        // A step called from @NonCPS code.
        assert mutant('src/slipway/Binary.groovy', "            return [error: \"cannot tell the agent's platform",
                "            steps.echo('x')\n            return [error: \"cannot tell the agent's platform")
                .any { it.contains('step echo called from @NonCPS method platformOf') }
        // Another class's @NonCPS code calling a method made CPS.
        assert mutant('src/slipway/Results.groovy', '@NonCPS\n    static Map hosts(', 'static Map hosts(')
                .any { it.contains('@NonCPS method outcome calls CPS method Results.hosts') }
        List<String> cross = violations('src/slipway/Cli.groovy', new File(Fixture.REPO, 'src/slipway/Cli.groovy').text,
                cpsMethods([new File(Fixture.REPO, 'src/slipway/Params.groovy').text.replace('@NonCPS\n    static boolean isSet', 'static boolean isSet')]))
        assert cross.any { it.contains('@NonCPS method flagWords calls CPS method Params.isSet') }
        // A closure over a collection in a step's CPS code.
        assert mutant('vars/deployCompose.groovy', '    Map res = r.run(p)\n', '    Map res = r.run(p)\n    p.hosts.each { echo it }\n')
                .any { it.contains('closure passed to .each() in CPS method call') }
    }
}
