package broker

import (
	"testing"
)

// TestOnlyServicesPublishDownlinks checks the downlink rules: a gateway
// receives on its own "…/down/#" what the ingest publishes there, may not
// publish there itself (a forged ack would make a gateway drop batches the
// cloud never committed), and reads no other gateway's downlinks; a
// version-1 gateway still publishes under its v1 prefix.
func TestOnlyServicesPublishDownlinks(t *testing.T) {
	b := startBroker(t, func(c *Config) {
		c.Services = append(c.Services, Service{Username: "acker", PasswordHash: "sha256:" + sha256hex("acker-secret"), Enabled: true, Publish: IngestPublish})
	})
	const gardenAck = "plantroom/v2/acme/garden/gw-garden-1/down/ack"
	var got inbox
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true, handler: got.handler})
	if code := subscribe(t, gw, "plantroom/v2/acme/garden/gw-garden-1/down/#"); code != 1 {
		t.Fatalf("own downlink subscription: %#x", code)
	}
	ingest := mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", clean: true})
	if err := publish(t, ingest, gardenAck, "ack"); err != nil {
		t.Fatalf("ingest publishing an ack: %v", err)
	}
	waitFor(t, "the ack at the gateway", func() bool { return got.len() == 1 })

	// The cloud's internal service publishes commands too; a gateway may
	// not (a forged command would switch equipment).
	if err := publish(t, ingest, "plantroom/v2/acme/garden/gw-garden-1/down/cmd", "cmd"); err != nil {
		t.Fatalf("internal service publishing a command: %v", err)
	}
	waitFor(t, "the command at the gateway", func() bool { return got.len() == 2 })
	_ = publish(t, gw, "plantroom/v2/acme/garden/gw-garden-1/down/cmd", "forged cmd")
	waitFor(t, "the gateway to be disconnected for publishing a command", func() bool { return !gw.IsConnectionOpen() })
	gw = mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true, handler: got.handler})
	if code := subscribe(t, gw, "plantroom/v2/acme/garden/gw-garden-1/down/#"); code != 1 {
		t.Fatalf("own downlink subscription: %#x", code)
	}
	// A service allowed acks only may not publish commands.
	ackOnly := mustDial(t, b.Addr(), clientOpts{user: "acker", password: "acker-secret", id: "acker-1", clean: true})
	_ = publish(t, ackOnly, "plantroom/v2/acme/garden/gw-garden-1/down/cmd", "cmd")
	waitFor(t, "the ack-only service to be disconnected for a command", func() bool { return !ackOnly.IsConnectionOpen() })

	// A version-1 gateway publishes under its v1 prefix.
	var v1 inbox
	sub := mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-2", clean: true, handler: v1.handler})
	if code := subscribe(t, sub, "plantroom/v1/#"); code != 1 {
		t.Fatalf("service subscription to v1: %#x", code)
	}
	if err := publish(t, gw, "plantroom/v1/acme/garden/gw-garden-1/telemetry", "v1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the v1 message", func() bool { return v1.len() == 1 })

	denied := b.denied(t, DenyPublish)
	_ = publish(t, gw, gardenAck, "forged ack")
	waitFor(t, "the gateway to be disconnected for publishing an ack", func() bool { return !gw.IsConnectionOpen() })
	if d := b.denied(t, DenyPublish); d != denied+1 {
		t.Errorf("denied{publish} = %v, want %v", d, denied+1)
	}
	if got.len() != 2 {
		t.Errorf("the gateway's forged command or ack was delivered: %d messages, want the ack and the command", got.len())
	}
	gw = mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	_ = publish(t, gw, "plantroom/v1/acme/garden/gw-garden-1/down/ack", "forged v1 ack")
	waitFor(t, "the gateway to be disconnected for a v1 downlink", func() bool { return !gw.IsConnectionOpen() })
	gw = mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	for _, f := range []string{"plantroom/v2/acme/garden/gw-garden-1/#", "plantroom/v2/acme/garden/gw-garden-1/status",
		"plantroom/v2/acme/tower/gw-tower-1/down/ack", "plantroom/v2/+/+/+/down/ack"} {
		if code := subscribe(t, gw, f); code != 0x80 {
			t.Errorf("gateway subscription to %q: %#x, want 0x80", f, code)
		}
	}
}
