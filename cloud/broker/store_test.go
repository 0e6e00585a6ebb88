package broker

import (
	"fmt"
	"path/filepath"
	"testing"
)

// With store_path, messages queued for a persistent session survive a
// broker restart. The store's directory is created when missing.
func TestQueuedMessagesSurviveRestartWithStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "cloud", "broker.db")
	first := startBroker(t, func(c *Config) { c.StorePath = path })
	opts := clientOpts{user: "ingest", password: first.ingestPW, id: "ingest-1", manualAck: true}
	sub := mustDial(t, first.Addr(), opts)
	subscribe(t, sub, "plantroom/v2/+/+/+/telemetry")
	sub.Disconnect(50)

	gw := mustDial(t, first.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	for i := 0; i < 5; i++ {
		if err := publish(t, gw, gardenTelemetry, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	gw.Disconnect(50)
	first.Stop()

	second := startBroker(t, func(c *Config) { c.StorePath = path })
	if n := second.Pending("ingest-1"); n != 5 {
		t.Errorf("%d messages restored for the session, want 5", n)
	}
	var in inbox
	opts.password, opts.handler = second.ingestPW, in.handler
	mustDial(t, second.Addr(), opts)
	waitFor(t, "the queued messages after the restart", func() bool {
		in.ackAll()
		return len(in.payloads()) == 5
	})
}
