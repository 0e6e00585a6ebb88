package backfill

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/internal/mqtttest"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// liveGarden is the garden building as the live simulator runs it after a
// backfill: same configuration and state file, ephemeral ports, MQTT
// devices on broker, a manual clock starting at start.
func liveGarden(t *testing.T, o Options, broker string, start time.Time) *sim.Building {
	t.Helper()
	cfg, err := sim.LoadConfig(filepath.Join("..", "..", "configs", "building-garden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateFile = o.Building.StateFile
	cfg.Control = ""
	cfg.MQTT.Broker = broker
	cfg.Clock = sim.ClockConfig{Start: start, Manual: true}
	for i := range cfg.Devices {
		if cfg.Devices[i].Listen != "" {
			cfg.Devices[i].Listen = "127.0.0.1:0"
		}
	}
	b, err := sim.New(cfg, o.Templates, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// counters lists every counter metric of a template.
func counters(t *config.Template) []string {
	var ms []string
	for _, pt := range t.Points {
		if pt.Counter {
			ms = append(ms, pt.Metric)
		}
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Counter {
				ms = append(ms, f.Metric)
			}
		}
	}
	return ms
}

func TestLiveSimulatorContinuesFromBackfill(t *testing.T) {
	broker := mqtttest.StartBroker(t)
	o := gardenOptions(t, broker)
	sub := mqtttest.Subscribe(t, broker, o.Gateway.Topic(protocol.KindTelemetry))
	o.To = o.From.Add(20 * time.Hour) // lights on from 18:30
	o.Interval = 5 * time.Minute
	o.Metrics = MetricsAll
	o.Building.StateFile = filepath.Join(t.TempDir(), "garden.state.json")
	exp, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]map[string]protocol.Reading{}
	for _, b := range received(t, sub, exp.Batches) {
		for _, r := range b.Readings {
			if last[r.Device] == nil {
				last[r.Device] = map[string]protocol.Reading{}
			}
			if r.TS >= last[r.Device][r.Metric].TS {
				last[r.Device][r.Metric] = r
			}
		}
	}
	lastTS := o.To.Add(-o.Interval)
	st, err := sim.ReadState(o.Building.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if !st.VirtualTime.Equal(lastTS) {
		t.Errorf("state taken at %s, the last reading at %s", st.VirtualTime, lastTS)
	}

	// The live simulator starts at each counter's last published value:
	// equal once passed through the template's encoding, as a gateway
	// reads it.
	live := liveGarden(t, o, broker, o.To)
	type start struct{ model, published float64 }
	starts := map[string]map[string]start{}
	n := 0
	for _, dc := range o.Building.Devices {
		tmpl := o.Templates[dc.Template]
		vals, err := live.Values(dc.ID)
		if err != nil {
			t.Fatal(err)
		}
		starts[dc.ID] = map[string]start{}
		for _, m := range counters(tmpl) {
			r, ok := last[dc.ID][m]
			if !ok || r.TS != lastTS.UnixMilli() {
				t.Fatalf("%s %s: last reading %+v, want one at %s", dc.ID, m, r, lastTS)
			}
			if init := dc.Initial[m]; r.Value <= init && m != "energy_export_kwh" {
				t.Errorf("%s %s: the backfill did not count (%v, initial %v)", dc.ID, m, r.Value, init)
			}
			if got := sim.Quantizer(tmpl, m)(vals[m]); got != r.Value {
				t.Errorf("%s %s: live simulator starts at %v (reads %v), the backfill last published %v", dc.ID, m, vals[m], got, r.Value)
			}
			starts[dc.ID][m] = start{vals[m], r.Value}
			n++
		}
	}
	if n < 13 {
		t.Fatalf("only %d counters checked", n)
	}
	if err := live.Advance(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	for id, ms := range starts {
		vals, _ := live.Values(id)
		tmpl := o.Templates[o.Building.Devices[indexOf(o.Building, id)].Template]
		for m, s := range ms {
			if vals[m] < s.model || sim.Quantizer(tmpl, m)(vals[m]) < s.published {
				t.Errorf("%s %s: fell from %v to %v", id, m, s.model, vals[m])
			}
		}
	}
	live.Stop()
	saved, err := sim.ReadState(o.Building.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	meter, _ := live.Values("garden-meter-main")
	if !saved.VirtualTime.Equal(o.To.Add(2*time.Hour)) || saved.Devices["garden-meter-main"]["energy_import_kwh"] != meter["energy_import_kwh"] {
		t.Errorf("state at stop: %s, meter %v (reads %v)", saved.VirtualTime, saved.Devices["garden-meter-main"]["energy_import_kwh"], meter["energy_import_kwh"])
	}

	// A restarted simulator continues from the stop.
	again := liveGarden(t, o, broker, o.To.Add(2*time.Hour))
	for id, ms := range saved.Devices {
		vals, _ := again.Values(id)
		for m, v := range ms {
			if vals[m] != v {
				t.Errorf("restart: %s %s starts at %v, saved %v", id, m, vals[m], v)
			}
		}
	}
	again.Stop()

	// History that would run through counters the cloud holds for later
	// times is refused before anything is published.
	_, err = Run(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), o.Building.StateFile) || !strings.Contains(err.Error(), "after the period's start") {
		t.Errorf("a backfill before the state's time: %v", err)
	}
	o.Building.StateFile = filepath.Join(t.TempDir(), "no-such-dir", "state.json")
	if _, err = Run(context.Background(), o, nil); err == nil || !strings.Contains(err.Error(), o.Building.StateFile) {
		t.Errorf("a state file in a missing directory: %v", err)
	}
}

func indexOf(cfg *sim.Config, id string) int {
	for i, d := range cfg.Devices {
		if d.ID == id {
			return i
		}
	}
	return -1
}
