package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeBigCompose writes a compose file with n services, each built from a
// shared context with its own Dockerfile, environment, ports, a healthcheck
// and a dependency on the service before it, like a large real project.
func writeBigCompose(t testing.TB, dir string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: big\nx-common: &common\n  restart: unless-stopped\n  labels:\n    team: platform\n")
	b.WriteString("services:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  svc%d:\n    <<: *common\n    build:\n      context: ./app\n      dockerfile: Dockerfile\n      args:\n        VERSION: ${VERSION:-1.0}\n", i)
		fmt.Fprintf(&b, "    environment:\n      - SERVICE=svc%d\n      - DB_URL=${DB_URL:-postgres://db/app}\n", i)
		fmt.Fprintf(&b, "    ports:\n      - \"%d:8080\"\n", 20000+i)
		b.WriteString("    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 5s\n")
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on:\n      - svc%d\n", i-1)
		}
	}
	b.WriteString("  db:\n    image: postgres:15\n")
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPlan500 is `slipway plan` on a 500-service project (target: median
// under 0.2 s per plan).
func BenchmarkPlan500(b *testing.B) {
	dir := b.TempDir()
	writeBigCompose(b, dir, 500)
	initRepo(b, dir)
	opts := Options{WorkDir: dir, Environ: env()}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		p, err := Load(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Builds) != 500 {
			b.Fatalf("%d builds, want 500", len(p.Builds))
		}
	}
	// CPU time (this process, all threads; git children excluded) is
	// steadier than wall time on a machine other jobs share.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
