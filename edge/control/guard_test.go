package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

func guardTemplates(t *testing.T) func(string) *config.Template {
	t.Helper()
	ts, err := config.LoadTemplates("../../configs/templates")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*config.Template{"g-light-1": ts["lighting-panel"], "g-el-1": ts["elevator"]}
	return func(id string) *config.Template { return m[id] }
}

var t0 = time.UnixMilli(1_780_000_000_000)

func cmd(id, device, point string, value float64) protocol.Command {
	return protocol.Command{V: protocol.MessageVersion, ID: id, Device: device, Point: point, Value: value,
		IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Minute).UnixMilli(), By: "pm-garden"}
}

func TestAdmit(t *testing.T) {
	g, err := NewGuard(guardTemplates(t), "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		c     protocol.Command
		at    time.Time
		want  Decision
		cause string
	}{
		{cmd("c1", "g-light-1", "circuit2_on", 1), t0.Add(time.Second), Execute, ""},
		{cmd("c1", "g-light-1", "circuit2_on", 1), t0.Add(2 * time.Second), Duplicate, ""},   // redelivered
		{cmd("c2", "g-light-1", "circuit2_on", 7), t0, Rejected, CauseValueNotAllowed},       // forged out-of-range
		{cmd("c3", "g-light-1", "power_w", 1), t0, Rejected, CauseNotWritable},               // forged not writable
		{cmd("c4", "g-el-1", "floor", 3), t0, Rejected, CauseNotWritable},                    // elevator
		{cmd("c5", "g-pump-9", "run", 1), t0, Rejected, CauseUnknownDevice},                  // not this gateway's
		{cmd("c2", "g-light-1", "circuit2_on", 7), t0.Add(time.Second), Duplicate, ""},       // a rejected id is not re-judged
		{cmd("c6", "g-light-1", "circuit1_on", 0), t0.Add(time.Hour), Expired, CauseExpired}, // after an outage
		{cmd("c6", "g-light-1", "circuit1_on", 0), t0.Add(time.Hour), Expired, CauseExpired}, // and again when redelivered
	}
	for i, c := range cases {
		d, cause, detail, err := g.Admit(c.c, c.at)
		if err != nil || d != c.want || cause != c.cause || (cause != "") != (detail != "") {
			t.Errorf("%d: Admit(%s) = %s, %q (%s), %v; want %s, %q", i, c.c.ID, d, cause, detail, err, c.want, c.cause)
		}
	}
	// Once its command expired, an id is forgotten; a redelivery is then expired, never executed.
	if d, _, _, _ := g.Admit(cmd("c1", "g-light-1", "circuit2_on", 1), t0.Add(2*time.Minute)); d != Expired {
		t.Errorf("c1 after expiry = %s, want expired", d)
	}
	if n := len(g.seen); n != 0 {
		t.Errorf("%d ids kept after every command expired, want 0", n)
	}
}

// TestAdmitAcrossRestart: a command executed before a restart is not
// executed again when the broker redelivers it after the restart.
func TestAdmitAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.json")
	g, err := NewGuard(guardTemplates(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _, err := g.Admit(cmd("c1", "g-light-1", "circuit2_on", 1), t0.Add(time.Second)); d != Execute || err != nil {
		t.Fatalf("first Admit = %s, %v", d, err)
	}
	g2, err := NewGuard(guardTemplates(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _, err := g2.Admit(cmd("c1", "g-light-1", "circuit2_on", 1), t0.Add(3*time.Second)); d != Duplicate || err != nil {
		t.Fatalf("Admit after restart = %s, %v; want duplicate", d, err)
	}
	if d, _, _, _ := g2.Admit(cmd("c2", "g-light-1", "circuit3_on", 0), t0.Add(3*time.Second)); d != Execute {
		t.Fatalf("new command after restart = %s, want execute", d)
	}
}

func TestNewGuardBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.json")
	if err := writeFile(path, "not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGuard(nil, path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("NewGuard on a corrupt file = %v, want an error naming it", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
