package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-dev/slipway/tools/internal/exit"
)

// FuzzRead: any file either reads as a manifest that validates and survives
// a Write/Read round trip, or fails with exit code 2 naming the file.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		`{"schema":1,"project":"shop","commit":"` + "0123456789abcdef0123456789abcdef01234567" + `","services":{}}`,
		`{}`, `[]`, `null`, ``, `{"services":{"web":{"image":"reg/x","tags":["a"]}}}`,
		`{"project":"a"}{"project":"b"}`, "\xff\xfe", `{"services":{"":{}}}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "slipway.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Read(path)
		if err != nil {
			if exit.Code(err) != exit.Usage || err.Error() == "" {
				t.Fatalf("exit code %d (want 2): %v", exit.Code(err), err)
			}
			return
		}
		if err := m.Validate(path); err != nil {
			t.Fatalf("Read returned a manifest that does not validate: %v", err)
		}
		out := filepath.Join(dir, "again.json")
		if err := Write(out, m); err != nil {
			t.Fatalf("writing a manifest that was read: %v", err)
		}
		if _, err := Read(out); err != nil {
			t.Fatalf("a manifest that was read and written does not read again: %v", err)
		}
	})
}
