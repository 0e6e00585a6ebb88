package ingest

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// startMosquitto runs a mosquitto broker on a free loopback port and
// returns its address. The ingest's window is bounded by
// max_inflight_messages; queued messages beyond it must not be dropped
// (max_queued_messages 0: no limit), or mosquitto loses data while the
// ingest is slow.
func startMosquitto(t *testing.T) string {
	t.Helper()
	return nettest.StartMosquitto(t, nettest.MosquittoOptions{
		Config: "max_inflight_messages 200\nmax_queued_messages 0\nlog_type warning\n",
	}).Addr()
}

// Two ingest replicas share a subscription on mosquitto: the messages are
// split between them and every reading is stored exactly once.
func TestMosquittoSharedSubscriptionTwoReplicas(t *testing.T) {
	addr := startMosquitto(t)
	e := newEnv(t, envOptions{noIngest: true})
	replica := func(id string) *Ingest {
		cfg := e.cfg
		cfg.MQTT = MQTTConfig{URL: "tcp://" + addr, ClientID: id, SharedGroup: "ingest"}
		cfg.Observers = nil
		return e.startIngestWith(cfg)
	}
	a, b := replica("plantroom-ingest-a"), replica("plantroom-ingest-b")

	gw := connect(t, addr, "", "", "gw-garden-1", nil)
	start := time.Now().Add(-4 * time.Hour).Truncate(time.Hour)
	const batches, perBatch = 60, 20 * 2 * 2
	var toks []paho.Token
	for s := 0; s < batches; s++ {
		p := encode(t, makeBatch("gw-garden-1", uint64(s+1), start.Add(time.Duration(s*20)*10*time.Second), gardenDevices, 20))
		toks = append(toks, gw.Publish(garden.Topic(protocol.KindTelemetry), 1, false, p))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	const want = batches * perBatch
	e.waitStored(30*time.Second, want, a, b)
	na := e.metric(a.metrics.messages.WithLabelValues("telemetry"))
	nb := e.metric(b.metrics.messages.WithLabelValues("telemetry"))
	if na+nb != batches || na == 0 || nb == 0 {
		t.Errorf("replicas received %v and %v telemetry messages, want a split of %d", na, nb, batches)
	}
	// Stored once: not even a duplicate row waiting for a merge.
	waitFor(t, 5*time.Second, "both replicas to acknowledge", func() bool {
		return e.metric(a.metrics.unacked) == 0 && e.metric(b.metrics.unacked) == 0
	})
	if raw := e.count("SELECT count() FROM readings"); raw != want {
		t.Errorf("%d raw rows, want %d", raw, want)
	}
}
