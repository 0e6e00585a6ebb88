package ingest

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// gathered returns the value of a counter or gauge without labels.
func gathered(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			if c := mf.Metric[0].Counter; c != nil {
				return c.GetValue()
			}
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func completed(toks []paho.Token) int {
	n := 0
	for _, tok := range toks {
		select {
		case <-tok.Done():
			n++
		default:
		}
	}
	return n
}

// ClickHouse goes away mid-stream and comes back: the ingest stops
// acknowledging, holds a bounded window, the broker holds the gateway back,
// and once ClickHouse answers again everything is stored exactly once.
func TestClickHouseDownAndBack(t *testing.T) {
	const maxUnacked, maxPending = 8, 16
	var p *nettest.Proxy
	brokerReg := prometheus.NewRegistry()
	ch := newEnv(t, envOptions{noIngest: true})
	p = nettest.NewProxy(t, ch.chAddr)
	e := ch
	e.chAddr = p.Addr()
	e.cfg.MaxUnacked = maxUnacked
	e.cfg.MQTT.KeepAlive = 2 * time.Second // a stalled client loop would lose the connection within seconds
	e.broker.Stop()
	// A broker with a small window and its own registry.
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: e.org, Logger: testLogger(), MaxPending: maxPending, Registerer: brokerReg})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := b.AddInternalService("plantroom-ingest")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	e.broker = b
	e.cfg.MQTT.URL, e.cfg.MQTT.Password = "tcp://"+b.Addr(), pw
	in := e.startIngest()

	gw := e.gateway(garden, "gw-garden-1", nil)
	start := time.Now().Add(-6 * time.Hour).Truncate(time.Hour)
	batch := func(s int) []byte {
		return encode(t, makeBatch("gw-garden-1", uint64(s+1), start.Add(time.Duration(s*20)*10*time.Second), gardenDevices, 20))
	}
	const perBatch = 20 * 2 * 2
	for s := 0; s < 10; s++ {
		publish(t, gw, garden.Topic(protocol.KindTelemetry), batch(s))
	}
	e.waitStored(20*time.Second, 10*perBatch, in)

	p.Cut(nettest.CutReset)
	var toks []paho.Token
	for s := 10; s < 60; s++ {
		toks = append(toks, gw.Publish(garden.Topic(protocol.KindTelemetry), 1, false, batch(s)))
	}
	waitFor(t, 30*time.Second, "a full window, failed inserts and a held gateway", func() bool {
		return e.metric(in.metrics.unacked) == maxUnacked && e.metric(in.metrics.chErrors) >= 2 &&
			gathered(t, brokerReg, "plantroom_broker_publishes_held_total") >= 1
	})
	// Bounded: the ingest holds its window, the broker its own; the gateway
	// has the rest, unacknowledged, in its queue.
	if n := completed(toks); n > maxUnacked+maxPending+1 {
		t.Errorf("%d publishes acknowledged while ClickHouse is down, want at most %d", n, maxUnacked+maxPending+1)
	}
	if n := e.stored(); n != 10*perBatch {
		t.Errorf("%d readings stored while ClickHouse was unreachable through the proxy, want %d", n, 10*perBatch)
	}
	// Held this way for several keepalive periods, the ingest stays
	// connected: its handlers wait, its network loop does not. (Elapsed time
	// is the condition here; the connection is checked again at the end,
	// after the held messages were acknowledged.)
	<-time.After(3 * e.cfg.MQTT.KeepAlive)
	if n := e.metric(in.metrics.connectionLosses); n != 0 || e.metric(in.metrics.connected) != 1 {
		t.Errorf("the ingest lost its connection %v times while holding a full window", n)
	}

	p.Restore()
	waitFor(t, 60*time.Second, "everything after ClickHouse came back", func() bool { return e.stored() == 60*perBatch })
	for _, tok := range toks {
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	waitFor(t, 5*time.Second, "no unacknowledged messages", func() bool { return e.metric(in.metrics.unacked) == 0 })
	if n := e.metric(in.metrics.connectionLosses); n != 0 {
		t.Errorf("the ingest lost its connection %v times", n)
	}
	// Every insert has returned: the roll-up holds each reading once.
	if n := e.count("SELECT sum(c) FROM (SELECT uniqExactMerge(n) AS c FROM readings_hourly GROUP BY company, project, device, metric, hour_ms)"); n != 60*perBatch {
		t.Errorf("hourly roll-up counts %d readings, want %d", n, 60*perBatch)
	}
}
