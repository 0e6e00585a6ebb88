package modbus

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// shippedTemplates loads the repository's templates (configs/templates).
func shippedTemplates(t testing.TB) config.Templates {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	ts, err := config.LoadTemplates(filepath.Join(filepath.Dir(file), "..", "..", "configs", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// testLogger logs to stderr with -v, and nowhere otherwise.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
