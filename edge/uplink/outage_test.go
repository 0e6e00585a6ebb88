package uplink

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// seqsContiguous asserts that the distinct seqs received are 1…max: no
// batch was skipped (duplicates from re-sends are allowed).
func seqsContiguous(t *testing.T, seqs []uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	var hi uint64
	for _, s := range seqs {
		seen[s] = true
		hi = max(hi, s)
	}
	for s := uint64(1); s <= hi; s++ {
		if !seen[s] {
			t.Fatalf("batch seq %d never arrived (highest %d)", s, hi)
		}
	}
}

// firstAndLast returns the arrival index of the first message holding a
// reading with value ≥ from and of the last one holding a value < below.
func firstAndLast(t *testing.T, msgs []mqtttest.Message, from, below int) (int, int) {
	t.Helper()
	first, last := -1, -1
	for i, m := range msgs {
		var b protocol.Batch
		if err := protocol.DecodeBatch(m.Payload, &b); err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Readings {
			if int(r.Value) >= from && first < 0 {
				first = i
			}
			if int(r.Value) < below {
				last = i
			}
		}
	}
	return first, last
}

// The broker goes away and comes back empty (no persistence). Readings
// taken meanwhile wait in the queue and all arrive afterwards, each device
// in order within its lane; fresh readings go out before the backlog is
// drained.
func TestBrokerRestartLosesNothingAndSendsLiveFirst(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	startAcker(t, broker.URL())
	q := newQueue(t)
	cfg := testConfig(broker.URL())
	cfg.BacklogRate = 500 // readings/s: the backlog takes a few seconds
	u := startUplink(t, cfg, q, nil)
	devices := []string{"pump-1", "pump-2"}
	p := startProducer(t, q, devices...)
	telemetry := gw.Topic(protocol.KindTelemetry)

	waitFor(t, 10*time.Second, "first readings at the broker", func() bool { return len(broker.Messages(telemetry)) >= 3 })
	broker.Stop()
	waitFor(t, 10*time.Second, "the uplink to notice", func() bool { return !u.Connected() })
	atStop := p.count()
	waitFor(t, 20*time.Second, "readings taken during the outage", func() bool { return p.count() >= atStop+600 })
	atRestart := p.count()
	broker.Restart()
	waitFor(t, 10*time.Second, "reconnect", func() bool { return u.Connected() })
	waitFor(t, 20*time.Second, "live readings after the restart", func() bool { return p.count() >= atRestart+200 })
	p.halt()
	n := p.count()
	waitFor(t, 30*time.Second, "queue drained", func() bool {
		st := q.Stats()
		return st.Items == 0 && st.InFlightBatches == 0 && st.AwaitingBatches == 0
	})

	msgs := broker.Messages(telemetry)
	r := decodeAll(t, msgs)
	checkComplete(t, r, devices, n)
	// Live, backlog, and the batches the broker had acknowledged and
	// then lost with its restart: they come again after their commit
	// timeout.
	lanesOrdered(t, r, 3)
	seqsContiguous(t, r.seqs)
	// Live first: a reading taken well after the restart arrived before
	// the last reading from the outage.
	firstLive, lastBacklog := firstAndLast(t, msgs, atRestart+100, atRestart)
	if firstLive < 0 || lastBacklog < 0 || firstLive > lastBacklog {
		t.Fatalf("first live message #%d, last backlog message #%d: live readings waited for the backlog", firstLive, lastBacklog)
	}
	if broker.Connects(gw.Gateway) < 2 {
		t.Fatalf("gateway connected %d times", broker.Connects(gw.Gateway))
	}
}

// The path to mosquitto is cut (a 4G outage): the broker announces the
// gateway offline by its last will, and after the path returns everything
// taken meanwhile arrives.
func TestMosquittoPathCutLastWillAndRecovery(t *testing.T) {
	mosq := nettest.StartMosquitto(t, nettest.MosquittoOptions{Config: "log_type warning\nmax_queued_messages 100000\n"})
	proxy := nettest.NewProxy(t, mosq.Addr())
	sub := mqtttest.Subscribe(t, mosq.URL(), gw.Prefix()+"/#")
	startAcker(t, mosq.URL())
	q := newQueue(t)
	cfg := testConfig(proxy.URL())
	cfg.KeepAlive = 2 * time.Second
	u := startUplink(t, cfg, q, nil)
	devices := []string{"meter-1"}
	p := startProducer(t, q, devices...)
	telemetry := gw.Topic(protocol.KindTelemetry)
	status := gw.Topic(protocol.KindStatus)

	waitFor(t, 10*time.Second, "online status", func() bool {
		ms := sub.Messages(status)
		return len(ms) > 0 && statusOf(t, ms[len(ms)-1]).State == protocol.StateOnline
	})
	waitFor(t, 10*time.Second, "first readings", func() bool { return len(sub.Messages(telemetry)) >= 3 })
	proxy.Cut(nettest.CutReset)
	waitFor(t, 10*time.Second, "last will", func() bool {
		ms := sub.Messages(status)
		s := statusOf(t, ms[len(ms)-1])
		return s.State == protocol.StateOffline && s.Reason == "last_will"
	})
	atCut := p.count()
	waitFor(t, 20*time.Second, "readings during the outage", func() bool { return p.count() >= atCut+300 })
	proxy.Restore()
	waitFor(t, 20*time.Second, "online again", func() bool {
		ms := sub.Messages(status)
		return statusOf(t, ms[len(ms)-1]).State == protocol.StateOnline
	})
	p.halt()
	n := p.count()
	waitFor(t, 30*time.Second, "queue drained", func() bool {
		st := q.Stats()
		return st.Items == 0 && st.InFlightBatches == 0 && st.AwaitingBatches == 0
	})
	waitFor(t, 10*time.Second, "all readings at the subscriber", func() bool {
		r := decodeAll(t, sub.Messages(telemetry))
		return len(r.readings["meter-1"]) >= n
	})
	r := decodeAll(t, sub.Messages(telemetry))
	checkComplete(t, r, devices, n)
	// Live, backlog, and the batches that were on the wire when the path
	// was cut: mosquitto may never have had them, or had them and lost the
	// PUBACK. They come again after reconnecting or after their commit
	// timeout, later than readings taken after them.
	lanesOrdered(t, r, 3)
	seqsContiguous(t, r.seqs)
	if !u.Connected() {
		t.Fatal("not connected at the end")
	}
}
