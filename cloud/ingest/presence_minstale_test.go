package ingest

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// A device that reports by exception sends nothing while its values stand
// still; MinStale keeps it fresh until well past the edge's heartbeat.
func TestPresenceMinStale(t *testing.T) {
	var org config.Org
	if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := NewPresence(&org, 3)
	p.now = func() time.Time { return now }
	p.seen("garden-elevator-1", now.Add(-2*time.Minute))

	d, ok := p.Device("garden-elevator-1")
	if !ok || !d.Stale || d.StaleAfter != 30*time.Second {
		t.Fatalf("without MinStale: got %+v, want stale after 30s (3 × 10s)", d)
	}
	p.MinStale = 11 * time.Minute
	if d, _ = p.Device("garden-elevator-1"); d.Stale || d.StaleAfter != 11*time.Minute {
		t.Fatalf("with MinStale 11m: got %+v, want fresh with an 11m window", d)
	}
	p.now = func() time.Time { return now.Add(10 * time.Minute) }
	if d, _ = p.Device("garden-elevator-1"); !d.Stale {
		t.Fatalf("12 minutes after its last reading: got %+v, want stale", d)
	}
}
