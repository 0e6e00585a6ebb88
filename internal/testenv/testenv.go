// Package testenv is the one rule for a test whose prerequisite is missing
// on the machine (root, a Debian tool, a kernel feature): it fails, naming
// what is missing and the variable that opts out of it. Only that explicit
// opt-out turns the failure into a skip, so a CI run (CI=true) or a
// developer's `make test` never passes by quietly skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Missing fails t because a prerequisite is missing, or skips it when the
// opt-out variable optOut is set to a non-empty value.
func Missing(t testing.TB, optOut, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if os.Getenv(optOut) != "" {
		t.Skipf("skipped (%s is set): %s", optOut, what)
	}
	ci := ""
	if os.Getenv("CI") == "true" {
		ci = " (CI=true)"
	}
	t.Fatalf("missing prerequisite%s: %s; install it, or set %s=1 to skip this test", ci, what, optOut)
}

// NeedRoot fails (or skips, see Missing) unless the test runs as root.
func NeedRoot(t testing.TB, optOut, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, optOut, "%s needs root", why)
	}
}

// LookPath returns the path of the command name, or fails (or skips, see
// Missing) naming the Debian package that provides it.
func LookPath(t testing.TB, optOut, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, optOut, "%s not found (Debian package %s)", name, debianPackage)
	}
	return path
}

// ExecEnv names the emulator that runs this test binary when it was built
// for another architecture: `go test -exec qemu-arm-static` runs the test
// binary itself, but a test that starts the binary again as a child
// process (a crash test, a namespace test) must start the emulator too.
// .ci/run sets it for the 32-bit ARM run; empty means run directly.
const ExecEnv = "PLANTROOM_TEST_EXEC"

// SelfCommand is exec.Command for this test binary (os.Args[0]), through
// the emulator named by PLANTROOM_TEST_EXEC when it is set.
func SelfCommand(args ...string) *exec.Cmd {
	if emu := os.Getenv(ExecEnv); emu != "" {
		return exec.Command(emu, append([]string{os.Args[0]}, args...)...)
	}
	return exec.Command(os.Args[0], args...)
}

// SelfArgv is the argument vector that starts this test binary, for a
// shell or another launcher: the emulator first when PLANTROOM_TEST_EXEC
// is set.
func SelfArgv() []string {
	if emu := os.Getenv(ExecEnv); emu != "" {
		return []string{emu, os.Args[0]}
	}
	return []string{os.Args[0]}
}
