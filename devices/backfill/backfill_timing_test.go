package backfill

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/devices/internal/mqtttest"
	"github.com/plantroom/plantroom/devices/sim"
)

// BenchmarkBackfillQuarter backfills three months of the garden building
// (8 devices, one reading a minute, energy metrics) through an in-process
// broker: go test -run '^$' -bench Quarter -benchtime 1x ./devices/backfill/
func BenchmarkBackfillQuarter(b *testing.B) {
	broker := mqtttest.StartBroker(b)
	o := gardenOptions(b, broker)
	o.To = o.From.AddDate(0, 3, 0)
	var readings int
	for b.Loop() {
		exp, err := Run(context.Background(), o, nil)
		if err != nil {
			b.Fatal(err)
		}
		readings += exp.Readings
	}
	b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkSimulateMonth steps the garden building's models through a
// month at the default 1 s step with no servers: the virtual clock's speed limit.
func BenchmarkSimulateMonth(b *testing.B) {
	o := gardenOptions(b, "")
	cfg := *o.Building
	cfg.Clock.Manual = true
	cfg.Clock.Start = o.From
	for b.Loop() {
		c := cfg
		bl, err := sim.New(&c, o.Templates, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := bl.Advance(30 * 24 * time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
