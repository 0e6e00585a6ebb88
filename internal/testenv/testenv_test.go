package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The rule is checked in a child process: a failing helper must fail its
// test, not this one.
func TestMissingFailsUnlessOptedOut(t *testing.T) {
	if os.Getenv("PLANTROOM_TESTENV_CHILD") != "" {
		Missing(t, "PLANTROOM_TESTENV_OPTOUT", "the %s tool", "frobnicate")
		return
	}
	run := func(env ...string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingFailsUnlessOptedOut$", "-test.v")
		cmd.Env = append(os.Environ(), append(env, "PLANTROOM_TESTENV_CHILD=1")...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := run("PLANTROOM_TESTENV_OPTOUT=", "CI=true"); !strings.Contains(out, "--- FAIL") ||
		!strings.Contains(out, "missing prerequisite (CI=true): the frobnicate tool") ||
		!strings.Contains(out, "set PLANTROOM_TESTENV_OPTOUT=1 to skip") {
		t.Errorf("under CI=true without the opt-out: want a failure naming the tool and the variable, got\n%s", out)
	}
	if out := run("PLANTROOM_TESTENV_OPTOUT=", "CI="); !strings.Contains(out, "--- FAIL") {
		t.Errorf("without the opt-out: want a failure, got\n%s", out)
	}
	if out := run("PLANTROOM_TESTENV_OPTOUT=1", "CI=true"); !strings.Contains(out, "--- SKIP") ||
		!strings.Contains(out, "skipped (PLANTROOM_TESTENV_OPTOUT is set)") {
		t.Errorf("with the opt-out: want a skip, got\n%s", out)
	}
}
