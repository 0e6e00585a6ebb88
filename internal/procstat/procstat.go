// Package procstat reads a process's figures from Linux's /proc, for the
// load benchmarks (gwload, agentload, the history benchmark).
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Status returns a kB value of /proc/<pid>/status, e.g. "VmRSS".
func Status(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the status of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot read %s of process %d: %w", key, pid, err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cannot read the status of process %d: %w", pid, err)
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// RSS returns a process's resident set (VmRSS) in bytes.
func RSS(pid int) (int64, error) {
	kb, err := Status(pid, "VmRSS")
	return kb << 10, err
}
