package ingest

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// A batch delivered several times (the gateway resends, the ingest restarts
// and the broker redelivers) changes nothing that a query or a report
// returns.
func TestRedeliveryChangesNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	gw := e.gateway(garden, "gw-garden-1", nil)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	var payloads [][]byte
	for s := 0; s < 12; s++ {
		t0 := start.Add(time.Duration(s*60) * 10 * time.Second) // 10 minutes per batch: two hours
		payloads = append(payloads, encode(t, makeBatch("gw-garden-1", uint64(s+1), t0, gardenDevices, 60)))
	}
	for _, p := range payloads {
		publish(t, gw, garden.Topic(protocol.KindTelemetry), p)
	}
	const want = 12 * 60 * 2 * 2
	e.waitStored(30*time.Second, want, e.ingest)
	figures := e.hourly()
	if figures == "" {
		t.Fatal("empty roll-up")
	}

	// Redelivery to the same ingest: recognised, acknowledged, not inserted.
	for _, p := range payloads {
		publish(t, gw, garden.Topic(protocol.KindTelemetry), p)
	}
	waitFor(t, 10*time.Second, "duplicates to be recognised", func() bool {
		return e.metric(e.ingest.metrics.duplicates) == float64(len(payloads))
	})

	// A fresh ingest has nothing in memory: it finds them in the table of
	// committed batches and inserts nothing either.
	e.ingest.Stop()
	in := e.startIngest()
	for _, p := range payloads {
		publish(t, gw, garden.Topic(protocol.KindTelemetry), p)
	}
	waitFor(t, 10*time.Second, "the fresh ingest to recognise the redeliveries", func() bool {
		return e.metric(in.metrics.duplicates) == float64(len(payloads))
	})
	if n := e.metric(in.metrics.readings); n != 0 {
		t.Errorf("the fresh ingest inserted %v readings again", n)
	}
	if raw := e.count("SELECT count() FROM readings"); raw != want {
		t.Errorf("%d raw rows, want %d: a redelivery was inserted again", raw, want)
	}
	if n := e.stored(); n != want {
		t.Errorf("after redeliveries count FINAL = %d, want %d", n, want)
	}
	if n := e.count("SELECT count() FROM (SELECT any(value) FROM readings GROUP BY company, project, device, metric, ts_ms)"); n != want {
		t.Errorf("after redeliveries GROUP BY count = %d, want %d", n, want)
	}
	if got := e.hourly(); got != figures {
		t.Errorf("redeliveries changed the hourly roll-up:\n%s\nwas\n%s", got, figures)
	}
}
