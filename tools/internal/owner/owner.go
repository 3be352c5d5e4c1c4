// Package owner records which process holds a deploy lock or wrote a
// deploying marker, precisely enough to prove later, from the same
// machine, that the process is gone: boot id and pid namespace say "this
// machine, this boot, this pid space", the start time tells a reused pid
// apart. A lock whose owner is provably dead is taken over at once instead
// of after its TTL.
package owner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Origin identifies a process. Zero fields mean "unknown" (an older
// slipway, or a /proc that could not be read): such an owner is never
// judged dead.
type Origin struct {
	BootID string `json:"bootId,omitempty"`
	PidNS  string `json:"pidNs,omitempty"`
	PID    int    `json:"pid,omitempty"`
	Start  uint64 `json:"start,omitempty"` // clock ticks after boot (/proc/PID/stat field 22)
}

// procRoot is /proc; tests point it elsewhere only through the functions'
// arguments, never by changing it.
const procRoot = "/proc"

// Self is this process's origin (fields that cannot be read stay empty).
func Self() Origin {
	return of(procRoot, os.Getpid())
}

// Of is the origin of another process of this machine (for tests and
// messages); fields that cannot be read stay empty.
func Of(pid int) Origin { return of(procRoot, pid) }

func of(proc string, pid int) Origin {
	o := Origin{PID: pid}
	if b, err := os.ReadFile(proc + "/sys/kernel/random/boot_id"); err == nil {
		o.BootID = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink(fmt.Sprintf("%s/%d/ns/pid", proc, pid)); err == nil {
		o.PidNS = ns
	}
	if st, err := readStat(proc, pid); err == nil {
		o.Start = st.start
	}
	return o
}

type stat struct {
	state byte
	start uint64
}

// readStat parses /proc/PID/stat; the command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func readStat(proc string, pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", proc, pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("unexpected /proc stat line %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("unexpected /proc stat line %q", s)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("unexpected start time in /proc stat line %q: %w", s, err)
	}
	return stat{state: f[0][0], start: start}, nil
}

// Local says whether o was recorded on this machine, in this boot and pid
// namespace: only then can Dead judge it.
func (o Origin) Local() bool {
	self := Self()
	return o.BootID != "" && o.PidNS != "" && o.PID > 0 && o.Start > 0 &&
		o.BootID == self.BootID && o.PidNS == self.PidNS
}

// Dead says whether o is provably gone: recorded here (Local), and its pid
// is gone, reused by a later process, or a zombie (it has exited; a PID 1
// that does not reap, as in many containers, leaves it in the table).
func (o Origin) Dead() bool {
	return o.Local() && deadIn(procRoot, o)
}

func deadIn(proc string, o Origin) bool {
	st, err := readStat(proc, o.PID)
	if err != nil {
		return os.IsNotExist(err) || isNoProcess(err)
	}
	return st.state == 'Z' || st.state == 'X' || st.start != o.Start
}

// isNoProcess: reading the stat of a pid that exits meanwhile fails with ESRCH.
func isNoProcess(err error) bool {
	return strings.Contains(err.Error(), "no such process")
}

// String is "pid N" with where it ran, for messages.
func (o Origin) String() string {
	if o.PID == 0 {
		return "an unknown process"
	}
	return fmt.Sprintf("pid %d (boot %s, pid namespace %s)", o.PID, shortID(o.BootID), o.PidNS)
}

func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	if s == "" {
		return "?"
	}
	return s
}
