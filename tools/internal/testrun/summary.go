package testrun

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/tools/internal/manifest"
)

// SummarySchemaVersion is the version of summary.json this binary writes.
const SummarySchemaVersion = 1

// Results of a run (Summary.Result).
const (
	ResultPassed    = "passed"    // every test service exited 0
	ResultFailed    = "failed"    // a test service exited non-zero, or a dependency failed
	ResultTimeout   = "timeout"   // --timeout expired
	ResultCancelled = "cancelled" // SIGINT/SIGTERM (Jenkins abort)
	ResultError     = "error"     // the stack could not be brought up (build, create)
)

// Outcomes of one service (ServiceResult.Outcome).
const (
	OutcomePassed     = "passed"      // test exited 0
	OutcomeFailed     = "failed"      // test exited non-zero; dependency that had to complete did not
	OutcomeTimeout    = "timeout"     // test still running at the timeout, stopped
	OutcomeStopped    = "stopped"     // test stopped early because a dependency failed
	OutcomeOK         = "ok"          // dependency started and did what was needed
	OutcomeCrashed    = "crashed"     // dependency exited non-zero (or was OOM-killed)
	OutcomeUnhealthy  = "unhealthy"   // dependency's healthcheck failed
	OutcomeNotHealthy = "not-healthy" // dependency still not healthy at the timeout
	OutcomeNotStarted = "not-started" // never started (an earlier failure, or the timeout)
)

// Summary is <results>/summary.json. The results directory holds:
//
//	<results>/summary.json          this summary (also on failure, timeout, cancellation)
//	<results>/logs/<service>.log    every service's output (stdout and stderr)
//	<results>/<service>/...         what each results path held, as `docker cp` copies it:
//	                                /out/junit.xml -> <service>/junit.xml,
//	                                /out (a directory) -> <service>/out/...
//	<results>/<service>/<n>/...     the same, per container, for a service with replicas
//
// Only these are replaced at the start of a run; other files stay.
type Summary struct {
	SchemaVersion   int                       `json:"schemaVersion"`
	Project         string                    `json:"project"` // the run's compose project name
	Files           []string                  `json:"files"`
	Manifest        string                    `json:"manifest,omitempty"`
	Commit          string                    `json:"commit,omitempty"`
	Compose         string                    `json:"compose"`
	Result          string                    `json:"result"`
	ExitCode        int                       `json:"exitCode"`
	Message         string                    `json:"message,omitempty"`
	Started         time.Time                 `json:"started"`
	Finished        time.Time                 `json:"finished"`
	DurationSeconds float64                   `json:"durationSeconds"`
	Tests           []string                  `json:"tests"`
	Failed          []string                  `json:"failed"`
	Warnings        []string                  `json:"warnings,omitempty"`
	Services        map[string]*ServiceResult `json:"services"`
}

// ServiceResult is one service of the run.
type ServiceResult struct {
	Role            string   `json:"role"`                      // "test" or "dependency"
	Image           string   `json:"image"`                     // what ran: image ID, ref, or the run-local build tag
	ManifestService string   `json:"manifestService,omitempty"` // the manifest service whose image ran
	Outcome         string   `json:"outcome"`
	State           string   `json:"state"`    // the engine's: created, running, exited, dead... or "not-created"
	ExitCode        *int     `json:"exitCode"` // null unless it ran and stopped
	Health          string   `json:"health,omitempty"`
	OOMKilled       bool     `json:"oomKilled,omitempty"`
	Restarts        int      `json:"restarts,omitempty"`
	DurationSeconds float64  `json:"durationSeconds"`
	Containers      []string `json:"containers"`
	Results         []string `json:"results,omitempty"`        // copied files, relative to the results directory
	MissingResults  []string `json:"missingResults,omitempty"` // result paths absent in the container
	Log             string   `json:"log,omitempty"`            // relative to the results directory
	Message         string   `json:"message,omitempty"`
}

func writeSummary(dir string, s *Summary) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return manifest.WriteFileAtomic(filepath.Join(dir, "summary.json"), append(data, '\n'), 0o644)
}
