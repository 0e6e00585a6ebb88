package broker

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

// A disconnected client's session ends after session_expiry.
func TestSessionsExpire(t *testing.T) {
	b := startBroker(t, func(c *Config) { c.SessionExpiry = time.Second })
	c := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: false})
	if tok := c.Subscribe("plantroom/v2/acme/garden/gw-garden-1/down/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c.Disconnect(100)
	if _, ok := b.server.Clients.Get("gw-garden-1"); !ok {
		t.Fatal("the session is gone at once")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := b.server.Clients.Get("gw-garden-1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session of a client disconnected for 10 s with session_expiry 1s is still kept")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sessions of gateways removed from the org are purged at start, from
// memory and from the store file; the others are kept.
func TestRemovedGatewaysSessionsPurgedAtStart(t *testing.T) {
	store := filepath.Join(t.TempDir(), "broker.db")
	org := testOrg(t)
	b := startBroker(t, func(c *Config) { c.StorePath, c.Org = store, org })
	for _, gw := range []string{"gw-garden-1", "gw-tower-1"} {
		c := mustDial(t, b.Addr(), clientOpts{user: gw, password: gw + "-secret", id: gw, clean: false})
		topic := map[string]string{"gw-garden-1": "plantroom/v2/acme/garden/gw-garden-1/down/#", "gw-tower-1": "plantroom/v2/acme/tower/gw-tower-1/down/#"}[gw]
		if tok := c.Subscribe(topic, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		c.Disconnect(100)
	}
	b.Stop()

	// gw-tower-1 leaves org.yaml.
	smaller := &config.Org{Companies: []config.Company{{ID: "acme", Name: "Acme", Projects: org.Companies[0].Projects[:1]}}}
	var logs strings.Builder
	restart := func(o *config.Org) *testBroker {
		return startBroker(t, func(c *Config) {
			c.StorePath, c.Org = store, o
			c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
	}
	b2 := restart(smaller)
	if _, ok := b2.server.Clients.Get("gw-tower-1"); ok {
		t.Error("the removed gateway's session is kept")
	}
	if _, ok := b2.server.Clients.Get("gw-garden-1"); !ok {
		t.Error("a configured gateway's session was purged")
	}
	if !strings.Contains(logs.String(), "purged the stored sessions of users no longer configured") || !strings.Contains(logs.String(), "gw-tower-1 (gw-tower-1)") {
		t.Errorf("log: %s", logs.String())
	}
	b2.Stop()
	// And from the file: it is not back when the gateway is configured again.
	b3 := restart(org)
	if _, ok := b3.server.Clients.Get("gw-tower-1"); ok {
		t.Error("the purged session came back from the store file")
	}
	if _, ok := b3.server.Clients.Get("gw-garden-1"); !ok {
		t.Error("gw-garden-1's session is lost")
	}
}
