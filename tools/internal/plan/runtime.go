package plan

import (
	"runtime/debug"
	"sync"

	"github.com/compose-spec/compose-go/v2/schema"
)

// loadGCPercent is the GC target while compose-go loads a project. The loader
// makes a lot of short-lived garbage (about 150 KB per service) while the
// live heap stays small, so with the default of 100 it runs a GC cycle every
// few MB; 400 cuts the loader's CPU time by a quarter for a bounded, brief
// rise in peak memory.
const loadGCPercent = 400

var gcTuning struct {
	sync.Mutex
	users int
	saved int
}

// relaxGC raises the GC target for the duration of a load; the returned
// function restores it once the last concurrent load ends. A target the user
// already raised (GOGC=off or above 400) is left alone.
func relaxGC() (restore func()) {
	gcTuning.Lock()
	defer gcTuning.Unlock()
	if gcTuning.users == 0 {
		gcTuning.saved = debug.SetGCPercent(loadGCPercent)
		if gcTuning.saved < 0 || gcTuning.saved > loadGCPercent {
			debug.SetGCPercent(gcTuning.saved)
		}
	}
	gcTuning.users++
	return func() {
		gcTuning.Lock()
		defer gcTuning.Unlock()
		gcTuning.users--
		if gcTuning.users == 0 {
			debug.SetGCPercent(gcTuning.saved)
		}
	}
}

// warmSchema compiles compose-go's JSON schema (once per process, about
// 40 ms) on another core while the files are read and interpolated, instead
// of in the loader's path when it first validates.
func warmSchema() {
	go func() { _ = schema.Validate(map[string]any{}) }()
}
