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

// writeCompose writes a compose file with n buildable services (plus a db)
// and their shared build context. Plain services are the 500-service file of
// docker/compose#11881 (where v2.23 took 0.175 s and v2.24 24 s), made
// buildable; rich ones add what a real service carries: an anchor merge,
// build args, environment with ${VAR:-default}, a port, a healthcheck and a
// depends_on.
func writeCompose(tb testing.TB, dir string, n int, rich bool) {
	tb.Helper()
	var b strings.Builder
	b.WriteString("name: big\n")
	if rich {
		b.WriteString("x-common: &common\n  restart: unless-stopped\n  labels:\n    team: platform\n")
	}
	b.WriteString("services:\n  db:\n    image: postgres:15\n")
	for i := 0; i < n; i++ {
		if !rich {
			fmt.Fprintf(&b, "  svc%d:\n    build: ./app\n", i)
			continue
		}
		fmt.Fprintf(&b, "  svc%d:\n    <<: *common\n    build:\n      context: ./app\n      args:\n        VERSION: ${VERSION:-1.0}\n", i)
		fmt.Fprintf(&b, "    environment:\n      - SERVICE=svc%d\n      - DB_URL=${DB_URL:-postgres://db/app}\n", i)
		fmt.Fprintf(&b, "    ports:\n      - \"%d:8080\"\n", 20000+i)
		b.WriteString("    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 5s\n")
		b.WriteString("    depends_on:\n      - db\n")
	}
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkPlan500 is `slipway plan` on a 500-service project (target: median
// under 0.2 s per plan).
func BenchmarkPlan500(b *testing.B) { benchPlan(b, false) }

// BenchmarkPlan500Rich is the same with services as a real project writes them.
func BenchmarkPlan500Rich(b *testing.B) { benchPlan(b, true) }

func benchPlan(b *testing.B, rich bool) {
	dir := b.TempDir()
	writeCompose(b, dir, 500, rich)
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
