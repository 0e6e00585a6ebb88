package sim

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// testStart is the virtual start of test buildings: a Wednesday morning.
var testStart = time.Date(2026, 9, 16, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

// loadTemplates loads the repository's templates (configs/templates).
func loadTemplates(t testing.TB) config.Templates {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "configs", "templates")
	ts, err := config.LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// testLogger logs to the test output on failure only (go test shows it
// with -v).
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig is a small building with one device of every Modbus template,
// on port 0, with a manual clock and no random faults.
func testConfig() *Config {
	none := PerDay(0)
	return &Config{
		Building: "test",
		Seed:     7,
		Clock:    ClockConfig{Start: testStart, Manual: true},
		Devices: []DeviceConfig{
			{ID: "meter", Template: "sdm630", Listen: "127.0.0.1:0", BaseLoadKW: 20},
			{ID: "pump-1", Template: "pump-vfd", Listen: "127.0.0.1:0", Pair: "pump-2", FaultsPerDay: none},
			{ID: "pump-2", Template: "pump-vfd", Listen: "127.0.0.1:0", FaultsPerDay: none},
			{ID: "lift", Template: "elevator", Listen: "127.0.0.1:0", FaultsPerDay: none, Floors: []int{-2, 12}},
			{ID: "panel", Template: "lighting-panel", Listen: "127.0.0.1:0", Transport: TransportRTUOverTCP},
		},
	}
}

// startBuilding builds and starts cfg; Stop runs at cleanup.
func startBuilding(t testing.TB, cfg *Config) *Building {
	t.Helper()
	b, err := New(cfg, loadTemplates(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
