import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.MethodNode
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
 * collection method (each, collect, findAll...), no regex Matcher is made (=~), and nothing
 * uses JsonSlurper (LazyMap is not serializable); every class in src/ is Serializable.
 */
class CpsRulesTest {
    static final Set<String> ITERATING = ['each', 'eachWithIndex', 'collect', 'collectEntries', 'collectMany', 'find', 'findAll',
                                          'findResult', 'findResults', 'any', 'every', 'inject', 'sort', 'toSorted', 'groupBy', 'count',
                                          'sum', 'min', 'max', 'unique', 'removeAll', 'retainAll', 'eachLine', 'times', 'upto',
                                          'downto', 'step', 'withIndex', 'split', 'with', 'tap', 'countBy', 'takeWhile', 'dropWhile'] as Set

    static List<File> librarySources() {
        List<File> files = []
        new File(Fixture.REPO, 'vars').eachFileMatch(~/.*\.groovy/) { files.add(it) }
        new File(Fixture.REPO, 'src').eachFileRecurse { if (it.name.endsWith('.groovy')) files.add(it) }
        assert files.size() >= 5 + 7
        return files
    }

    /** Violations in one source text: "file:line: what". */
    static List<String> violations(String name, String text) {
        CompilationUnit cu = new CompilationUnit()
        SourceUnit su = cu.addSource(name, text)
        cu.compile(Phases.CONVERSION)
        List<String> found = []
        for (ClassNode cls : su.AST.classes) {
            boolean script = cls.isScript()
            if (!script && !cls.name.contains('$') && !cls.interfaces*.name.any { it in ['Serializable', 'java.io.Serializable'] }) {
                found.add("${name}: class ${cls.name} is not Serializable")
            }
            for (MethodNode m : cls.methods) {
                boolean nonCps = m.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' }
                if (nonCps || m.code == null) {
                    continue
                }
                m.code.visit(new ClassCodeVisitorSupport() {
                    protected SourceUnit getSourceUnit() { return su }

                    void visitMethodCallExpression(MethodCallExpression call) {
                        if (call.methodAsString in ITERATING && call.arguments instanceof ArgumentListExpression &&
                                ((ArgumentListExpression) call.arguments).expressions.any { it instanceof ClosureExpression }) {
                            found.add(at(name, call, "closure passed to .${call.methodAsString}() in CPS method ${m.name}"))
                        }
                        super.visitMethodCallExpression(call)
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

    static String at(String name, ASTNode n, String what) {
        return "${name}:${n.lineNumber}: ${what}".toString()
    }

    @Test
    void theLibraryFollowsTheCpsRules() {
        List<String> found = []
        for (File f : librarySources()) {
            found.addAll(violations(f.path - (Fixture.REPO.path + '/'), f.text))
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
}
