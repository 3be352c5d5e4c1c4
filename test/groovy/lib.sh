# shellcheck shell=bash
# Shared by run.sh and pipeline.sh: find Java, compile the harness and tests with Debian's
# Groovy 2.4 (the Groovy Jenkins embeds) and JUnit 4. Sourced, not run.

groovy_setup() {
  if [ -z "${JAVA_HOME:-}" ] || [ ! -x "$JAVA_HOME/bin/java" ]; then
    if [ -x /usr/lib/jvm/default-java/bin/java ]; then
      JAVA_HOME=/usr/lib/jvm/default-java
    else
      local java
      java=$(command -v java) || { echo "java not found: apt-get install default-jre-headless groovy junit4" >&2; return 1; }
      JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")")
    fi
  fi
  export JAVA_HOME
  JAVA="$JAVA_HOME/bin/java"
  local jar
  GROOVY_CP=""
  for jar in /usr/share/java/groovy-all.jar /usr/share/java/junit4.jar /usr/share/java/hamcrest-core.jar /usr/share/java/hamcrest-library.jar; do
    [ -f "$jar" ] || { echo "missing $jar: apt-get install groovy junit4 libhamcrest-java" >&2; return 1; }
    GROOVY_CP="$GROOVY_CP${GROOVY_CP:+:}$jar"
  done
  # Groovy 2.4 reflects into JDK internals; on Java 9+ that needs these opens, else it warns
  # (or, on 17, fails for some calls).
  JAVA_OPTS_GROOVY=""
  if "$JAVA" -version 2>&1 | grep -qv '"1\.8'; then
    for pkg in java.lang java.util java.io java.net java.nio java.lang.reflect java.lang.invoke java.util.regex java.text java.math java.util.concurrent; do
      JAVA_OPTS_GROOVY="$JAVA_OPTS_GROOVY --add-opens java.base/$pkg=ALL-UNNAMED"
    done
  fi
}

# groovy_compile OUT FILE... : compiles with the harness classpath.
groovy_compile() {
  local out=$1; shift
  mkdir -p "$out"
  # shellcheck disable=SC2086
  "$JAVA" $JAVA_OPTS_GROOVY -cp "$GROOVY_CP" org.codehaus.groovy.tools.FileSystemCompiler \
    -cp "$GROOVY_CP:$out" -d "$out" "$@"
}
