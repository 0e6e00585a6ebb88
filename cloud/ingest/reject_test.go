package ingest

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// Malformed payloads, unknown gateways and devices, topic mismatches and
// future timestamps are rejected and counted by cause, and the stream goes
// on.
func TestRejectionsAreCountedAndTheStreamFlows(t *testing.T) {
	e := newEnv(t, envOptions{})
	inj := connect(t, e.broker.Addr(), "injector", "injector-secret", "injector-1", nil)
	gwTopic := garden.Topic(protocol.KindTelemetry)
	now := time.Now()
	good := func(seq uint64) []byte {
		return encode(t, makeBatch("gw-garden-1", seq, now.Add(-time.Hour), gardenDevices, 5))
	}

	// Whole messages.
	corrupt := good(1)
	corrupt[len(corrupt)-1] ^= 0xff
	publish(t, inj, gwTopic, corrupt)                                                            // checksum
	publish(t, inj, gwTopic, []byte{1})                                                          // truncated
	publish(t, inj, "plantroom/v2/acme/garden/gw-nowhere/telemetry", good(2))                    // unknown gateway
	publish(t, inj, "plantroom/v2/acme/tower/gw-garden-1/telemetry", good(3))                    // wrong project
	publish(t, inj, tower.Topic(protocol.KindTelemetry), good(4))                                // payload of another gateway
	publish(t, inj, garden.Topic(protocol.KindStatus), []byte(`{"v":1,"gateway":"gw-garden-1"`)) // json
	publish(t, inj, garden.Topic(protocol.KindEvents), protocol.EncodeEvent(protocol.Event{
		Gateway: "gw-garden-1", Seq: 1, Kind: "device_offline", Device: "tower-meter-main", TS: now.UnixMilli()})) // device of another gateway

	// Single readings: one unknown device and two future readings in a
	// batch whose other readings are stored.
	mixed := makeBatch("gw-garden-1", 6, now.Add(-time.Hour), gardenDevices, 5)
	mixed.Readings = append(mixed.Readings,
		protocol.Reading{Device: "garden-ghost", Metric: "power_w", TS: now.UnixMilli(), Value: 1},
		protocol.Reading{Device: "garden-pump-1", Metric: "power_w", TS: now.Add(time.Hour).UnixMilli(), Value: 2},
		protocol.Reading{Device: "garden-pump-1", Metric: "power_w", TS: now.Add(2 * time.Hour).UnixMilli(), Value: 3},
	)
	publish(t, inj, gwTopic, encode(t, mixed))
	// And a good batch and event after all that.
	publish(t, inj, gwTopic, encode(t, makeBatch("gw-garden-1", 7, now.Add(-30*time.Minute), gardenDevices, 5)))
	publish(t, inj, garden.Topic(protocol.KindEvents), protocol.EncodeEvent(protocol.Event{
		Gateway: "gw-garden-1", Seq: 2, Kind: "device_offline", Device: "garden-pump-1", TS: now.UnixMilli(), Attrs: map[string]float64{"errors": 3}}))

	waitFor(t, 20*time.Second, "the good readings and the event", func() bool {
		return e.stored() == 2*20 && e.count("SELECT count() FROM events FINAL WHERE kind = 'device_offline'") == 1
	})
	for cause, want := range map[string]float64{
		"checksum": 1, "truncated": 1, CauseUnknownGateway: 1, CauseWrongProject: 1,
		CauseGatewayMismatch: 1, "json": 1, CauseUnknownDevice: 1,
	} {
		if got := e.rejectedMessages(cause); got != want {
			t.Errorf("messages rejected{%s} = %v, want %v", cause, got, want)
		}
	}
	if got := e.rejectedReadings(CauseUnknownDevice); got != 1 {
		t.Errorf("readings rejected{unknown_device} = %v, want 1", got)
	}
	if got := e.rejectedReadings(CauseFuture); got != 2 {
		t.Errorf("readings rejected{future} = %v, want 2", got)
	}
	if n := e.count("SELECT count() FROM readings FINAL WHERE device = 'garden-ghost' OR ts_ms > ?", now.Add(time.Minute).UnixMilli()); n != 0 {
		t.Errorf("%d rejected readings stored", n)
	}
	var attrs string
	if err := e.db.Conn().QueryRow(t.Context(), "SELECT attrs FROM events FINAL WHERE kind = 'device_offline'").Scan(&attrs); err != nil || attrs != `{"errors":3}` {
		t.Errorf("event attrs = %q, %v", attrs, err)
	}
	// Rejected messages are acknowledged too: nothing is left hanging.
	waitFor(t, 5*time.Second, "no unacknowledged messages", func() bool { return e.metric(e.ingest.metrics.unacked) == 0 })
}

// The broker refuses a gateway publishing under another project's prefix:
// nothing of it is stored.
func TestForgedPrefixIsRefusedAndNothingStored(t *testing.T) {
	e := newEnv(t, envOptions{})
	gw := e.gateway(garden, "gw-garden-1", nil)
	now := time.Now()
	forged := makeBatch("gw-tower-1", 99, now.Add(-time.Hour), []string{"tower-meter-main"}, 5)
	tok := gw.Publish(tower.Topic(protocol.KindTelemetry), 1, false, encode(t, forged))
	tok.WaitTimeout(5 * time.Second)
	waitFor(t, 10*time.Second, "the forging gateway to be disconnected", func() bool { return !gw.IsConnectionOpen() })

	// The real tower gateway's batch, sent afterwards, arrives; the forged one never does.
	tw := e.gateway(tower, "gw-tower-1", nil)
	publish(t, tw, tower.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-tower-1", 1, now.Add(-2*time.Hour), []string{"tower-meter-main"}, 5)))
	waitFor(t, 10*time.Second, "the real batch", func() bool { return e.stored() == 10 })
	if n := e.count("SELECT count() FROM readings WHERE seq = 99"); n != 0 {
		t.Errorf("%d forged readings stored", n)
	}
	if got := e.metric(e.ingest.metrics.messages.WithLabelValues("telemetry")); got != 1 {
		t.Errorf("ingest received %v telemetry messages, want 1", got)
	}
}
