package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/backfill"
	"github.com/plantroom/plantroom/devices/internal/mqtttest"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/internal/logtest"
)

func TestRunStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "b.yaml")
	templates, _ := filepath.Abs(filepath.Join("..", "..", "..", "configs", "templates"))
	os.WriteFile(cfg, []byte(`
templates: `+templates+`
control: 127.0.0.1:0
clock: {speed: 60}
devices:
  - {id: m1, template: sdm630, listen: "127.0.0.1:0"}
`), 0o644)
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	state := filepath.Join(dir, "counters.json")
	go func() { done <- runBuilding(ctx, []string{"-config", cfg, "-seed", "9", "-state", state}, log) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "control API listening") {
		select {
		case err := <-done:
			t.Fatalf("devsim ended early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("devsim did not start:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("devsim did not stop on cancel")
	}
	if st, err := sim.ReadState(state); err != nil || len(st.Devices["m1"]) != 3 {
		t.Errorf("-state: %v, %+v", err, st)
	}
	if err := runBuilding(context.Background(), []string{"-config", filepath.Join(dir, "missing.yaml")}, log); err == nil {
		t.Error("a missing configuration ran")
	}
}

func TestBackfillCommand(t *testing.T) {
	broker := mqtttest.StartBroker(t)
	out := filepath.Join(t.TempDir(), "expected.json")
	state := filepath.Join(t.TempDir(), "tower.state.json")
	args := []string{
		"-config", filepath.Join("..", "..", "..", "configs", "building-tower.yaml"),
		"-gateway", "gw-tower-1", "-company", "acme", "-project", "tower",
		"-from", "2026-08-01", "-to", "2026-08-02", "-broker", broker, "-username", "gw-tower-1",
		"-interval", "5m", "-seq-start", "77", "-expected", out, "-state", state,
		"-replace-meter", "tower-meter-main@2026-08-01T12:00", "-gap", "tower-plug-1@2026-08-01T03:00/2026-08-01T05:00",
	}
	if err := runBackfill(context.Background(), args, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	exp, err := backfill.ReadExpected(out)
	if err != nil {
		t.Fatal(err)
	}
	if exp.SeqFirst != 78 || len(exp.Devices) != 8 || len(exp.Devices["tower-meter-main"].Hourly) != 24 ||
		len(exp.Replacements) != 1 || len(exp.Gaps) != 1 || exp.Gaps[0].Device != "tower-plug-1" {
		t.Errorf("expected file: seq %d, %d devices, replacements %v, gaps %v", exp.SeqFirst, len(exp.Devices), exp.Replacements, exp.Gaps)
	}
	ts, err := config.LoadTemplates(filepath.Join("..", "..", "..", "configs", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	read := sim.Quantizer(ts["sdm630"], "energy_import_kwh") // what a gateway reads of the saved counter
	st, err := sim.ReadState(state)
	if err != nil || len(st.Devices) != 8 || read(st.Devices["tower-meter-main"]["energy_import_kwh"]) != exp.Devices["tower-meter-main"].Last.Value {
		t.Errorf("-state: %v, %d devices, meter %v (last published %v)", err, len(st.Devices), st.Devices["tower-meter-main"]["energy_import_kwh"], exp.Devices["tower-meter-main"].Last.Value)
	}
	if err := runBackfill(context.Background(), []string{"-from", "soon"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a bad -from was accepted")
	}
}
