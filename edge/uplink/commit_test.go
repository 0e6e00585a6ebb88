package uplink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// appendReadings stores n readings of one device, values from..from+n-1.
func appendReadings(t *testing.T, q *queue.Queue, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := q.Append(context.Background(), []protocol.Reading{{Device: "meter-1", Metric: "power_w", TS: baseTS + int64(i)*10, Value: float64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// copiesOf returns the received copies of seq.
func copiesOf(a *mqtttest.Acker, seq uint64) []mqtttest.Batch {
	var out []mqtttest.Batch
	for _, b := range a.Received() {
		if b.Seq == seq {
			out = append(out, b)
		}
	}
	return out
}

func drained(q *queue.Queue) func() bool {
	return func() bool {
		st := q.Stats()
		return st.Items == 0 && st.InFlightBatches == 0 && st.AwaitingBatches == 0
	}
}

// No acknowledgement: the batch is re-sent byte for byte under its seq
// after commit_timeout, then after twice that; once acknowledgements
// flow, it leaves the queue. The cloud's silence makes the uplink degraded
// after commit_degraded_after.
func TestNoAckResendsByteIdenticalWithBackoff(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	acker := startAcker(t, broker.URL())
	acker.Silent(true)
	q := newQueue(t)
	appendReadings(t, q, 0, 5)
	cfg := testConfig(broker.URL())
	cfg.CommitTimeout = 400 * time.Millisecond
	cfg.CommitDegradedAfter = time.Second
	reg := prometheus.NewRegistry()
	u := startUplink(t, cfg, q, reg)

	waitFor(t, 10*time.Second, "three sends of batch 1", func() bool { return len(copiesOf(acker, 1)) >= 3 })
	cs := copiesOf(acker, 1)
	for i, c := range cs[1:] {
		if !bytes.Equal(c.Payload, cs[0].Payload) {
			t.Fatalf("send %d of batch 1 differs from the first", i+2)
		}
	}
	// Measured at the receiver, whose clock starts a little before the
	// PUBACK that starts the timer: allow 100 ms for that.
	const slack = 100 * time.Millisecond
	first, second := cs[1].At.Sub(cs[0].At), cs[2].At.Sub(cs[1].At)
	if first < cfg.CommitTimeout-slack || second < 2*cfg.CommitTimeout-slack {
		t.Fatalf("re-sent after %s and %s, want at least %s and %s", first, second, cfg.CommitTimeout, 2*cfg.CommitTimeout)
	}
	if st := q.Stats(); st.Items != 5 {
		t.Fatalf("readings deleted without a commit acknowledgement: %+v", st)
	}
	if got := testutil.ToFloat64(u.m.commitTimeouts); got < 2 {
		t.Fatalf("commit timeouts metric %v, want >= 2", got)
	}
	waitFor(t, 10*time.Second, "degraded", func() bool { return u.CommitWait().Degraded })

	acker.Silent(false)
	waitFor(t, 20*time.Second, "queue drained", drained(q))
	if w := u.CommitWait(); w.Degraded || w.Waiting != 0 || w.LastAck.IsZero() {
		t.Fatalf("commit wait after the acknowledgement: %+v", w)
	}
	if got := testutil.ToFloat64(u.m.committed); got != 1 {
		t.Fatalf("committed batches metric %v, want 1", got)
	}
}

// A lost acknowledgement (here: against Debian's mosquitto) costs one
// re-send, which is acknowledged.
func TestLostAckResendThenAckMosquitto(t *testing.T) {
	mosq := nettest.StartMosquitto(t, nettest.MosquittoOptions{})
	acker := mqtttest.StartAcker(t, mosq.URL(), "", "")
	acker.Drop(1)
	q := newQueue(t)
	appendReadings(t, q, 0, 3)
	cfg := testConfig(mosq.URL())
	cfg.CommitTimeout = 500 * time.Millisecond
	startUplink(t, cfg, q, nil)
	waitFor(t, 20*time.Second, "queue drained", drained(q))
	cs := copiesOf(acker, 1)
	if len(cs) < 2 {
		t.Fatalf("batch 1 arrived %d times, want a re-send after the lost acknowledgement", len(cs))
	}
	for _, c := range cs[1:] {
		if !bytes.Equal(c.Payload, cs[0].Payload) {
			t.Fatal("the re-sent batch 1 differs from the first send")
		}
	}
	if cs[0].Epoch != q.Epoch() {
		t.Fatalf("batch carries epoch %d, queue has %d", cs[0].Epoch, q.Epoch())
	}
}

// A rejected batch is deleted, not re-sent, counted by cause and reported
// on the events topic; the next batch is committed as usual.
func TestRejectedDeletedCountedReported(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	acker := startAcker(t, broker.URL())
	acker.Reject(1, protocol.RejectSeqConflict)
	q := newQueue(t)
	appendReadings(t, q, 0, 4)
	cfg := testConfig(broker.URL())
	cfg.BatchMaxReadings = 2 // two batches
	cfg.CommitTimeout = 300 * time.Millisecond
	startUplink(t, cfg, q, nil)
	waitFor(t, 10*time.Second, "queue drained", drained(q))
	waitFor(t, 10*time.Second, "the batch_rejected event", func() bool {
		for _, m := range broker.Messages(gw.Topic(protocol.KindEvents)) {
			if e, err := protocol.DecodeEvent(m.Payload); err == nil && e.Kind == queue.EventBatchRejected && e.Attrs["seq"] == 1 {
				return true
			}
		}
		return false
	})
	if got := q.Stats().Rejected[protocol.RejectSeqConflict]; got.Batches != 1 || got.Readings != 2 {
		t.Fatalf("rejected: %+v", q.Stats().Rejected)
	}
	time.Sleep(2 * cfg.CommitTimeout) // a re-send would come now
	if n := len(copiesOf(acker, 1)); n != 1 {
		t.Fatalf("rejected batch sent %d times", n)
	}
}

// An acknowledgement for another epoch (another queue file of this
// gateway) changes nothing; the right one does.
func TestOtherEpochIgnored(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	acker := startAcker(t, broker.URL())
	acker.Silent(true)
	q := newQueue(t)
	appendReadings(t, q, 0, 3)
	cfg := testConfig(broker.URL())
	cfg.CommitTimeout = time.Minute
	u := startUplink(t, cfg, q, prometheus.NewRegistry())
	waitFor(t, 10*time.Second, "awaiting commit", func() bool { return q.Stats().AwaitingBatches == 1 })
	other := q.Epoch()%protocol.MaxEpoch + 1
	acker.Send(t, gw, protocol.Ack{Epoch: other, Committed: []protocol.SeqRange{{1, 1000}}})
	waitFor(t, 10*time.Second, "the ack counted", func() bool { return testutil.ToFloat64(u.m.acks.WithLabelValues("other_epoch")) == 1 })
	if st := q.Stats(); st.Items != 3 || st.AwaitingBatches != 1 {
		t.Fatalf("an ack for epoch %d (ours %d) deleted readings: %+v", other, q.Epoch(), st)
	}
	acker.Send(t, gw, protocol.Ack{Epoch: q.Epoch(), Committed: []protocol.SeqRange{{1, 1}}})
	waitFor(t, 10*time.Second, "queue drained", drained(q))
}

// Batches awaiting their commit when the agent stops are re-sent after the
// restart, byte for byte under the same seq, and then committed
// (mosquitto, which keeps nothing across the agent's restart that matters
// here: the queue does).
func TestRestartResendsAwaitingMosquitto(t *testing.T) {
	mosq := nettest.StartMosquitto(t, nettest.MosquittoOptions{})
	acker := mqtttest.StartAcker(t, mosq.URL(), "", "")
	acker.Silent(true)
	path := filepath.Join(t.TempDir(), "q.db")
	open := func() *queue.Queue {
		q, err := queue.New(queue.Config{Path: path, Gateway: gw.Gateway, CommitInterval: 5 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return q
	}
	q := open()
	appendReadings(t, q, 0, 6)
	cfg := testConfig(mosq.URL())
	cfg.BatchMaxReadings = 2
	cfg.CommitTimeout = time.Minute // no re-send before the restart
	u, err := New(cfg, q, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "three batches awaiting commit", func() bool { return q.Stats().AwaitingBatches == 3 })
	before := map[uint64][]byte{}
	for _, b := range acker.Received() {
		before[b.Seq] = b.Payload
	}
	u.Stop()
	q.Stop()

	q = open()
	t.Cleanup(q.Stop)
	acker.Silent(false)
	startUplink(t, cfg, q, nil)
	waitFor(t, 20*time.Second, "queue drained", drained(q))
	for seq, p := range before {
		cs := copiesOf(acker, seq)
		if len(cs) != 2 || !bytes.Equal(cs[1].Payload, p) {
			t.Fatalf("batch %d: %d copies, re-sent identical: %v", seq, len(cs), len(cs) == 2 && bytes.Equal(cs[1].Payload, p))
		}
	}
	if len(before) != 3 {
		t.Fatalf("%d batches before the restart, want 3", len(before))
	}
}

// A handler registered for another downlink name receives its messages.
func TestDownlinkHook(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	q := newQueue(t)
	u, err := New(testConfig(broker.URL()), q, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	if err := u.HandleDownlink(protocol.DownCmd, func(p []byte) { got <- append([]byte(nil), p...) }); err != nil {
		t.Fatal(err)
	}
	if err := u.HandleDownlink(protocol.DownAck, func([]byte) {}); err == nil {
		t.Fatal("the ack handler could be replaced")
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Stop)
	waitFor(t, 10*time.Second, "connected", u.Connected)
	cloud := startAcker(t, broker.URL())
	cloud.Publish(t, gw.DownlinkTopic(protocol.DownCmd), []byte(`{"id":"c1"}`))
	select {
	case p := <-got:
		if string(p) != `{"id":"c1"}` {
			t.Fatalf("handler got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the down/cmd handler was not called")
	}
}

// A downlink message the broker kept for the gateway's persistent session
// while it was away (a command sent during an outage) reaches its handler
// after the reconnect. The broker delivers such messages right after
// CONNACK, before the session's SUBSCRIBE is answered; they must not be
// dropped for want of a handler. With mosquitto and the embedded broker.
// After the reconnect the SUBSCRIBE is held back until the messages have
// arrived, so they cannot slip in behind it: paho left a message without
// a matching route unacknowledged and unhandled, and a command sent during
// an outage waited at the broker until it expired.
func TestDownlinkKeptDuringOutage(t *testing.T) {
	for _, name := range []string{"mosquitto", "embedded"} {
		t.Run(name, func(t *testing.T) {
			var url string
			var cloud *mqtttest.Acker
			if name == "mosquitto" {
				url = nettest.StartMosquitto(t, nettest.MosquittoOptions{}).URL()
				cloud = mqtttest.StartAcker(t, url, "", "")
			} else {
				url = mqtttest.StartMochi(t, users()).URL()
				cloud = startAcker(t, url)
			}
			got := make(chan []byte, 4)
			start := func(holdSubscribe bool) *Uplink {
				u, err := New(testConfig(url), newQueue(t), slog.New(slog.DiscardHandler), nil)
				if err != nil {
					t.Fatal(err)
				}
				if holdSubscribe {
					u.beforeSubscribe = func() {
						for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
							time.Sleep(10 * time.Millisecond)
						}
					}
				}
				if err := u.HandleDownlink(protocol.DownCmd, func(p []byte) { got <- append([]byte(nil), p...) }); err != nil {
					t.Fatal(err)
				}
				if err := u.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "connected", u.Connected)
				return u
			}
			u := start(false)
			u.Stop() // the session (and its subscription) stays at the broker
			for i := range 3 {
				cloud.Publish(t, gw.DownlinkTopic(protocol.DownCmd), []byte(fmt.Sprintf(`{"id":"c%d"}`, i)))
			}
			t.Cleanup(start(true).Stop)
			seen := map[string]bool{}
			for i := range 3 {
				select {
				case p := <-got: // in any order: handlers run concurrently
					seen[string(p)] = true
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of 3 commands kept during the outage reached the handler", i)
				}
			}
			for i := range 3 {
				if want := fmt.Sprintf(`{"id":"c%d"}`, i); !seen[want] {
					t.Errorf("%s did not reach the handler (got %v)", want, seen)
				}
			}
		})
	}
}
