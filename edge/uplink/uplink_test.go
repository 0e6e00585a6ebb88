package uplink

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/protocol"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var gw = protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-test-1"}

const secret = "test-secret"

var baseTS = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const ingestUser, ingestSecret = "ingest", "ingest-secret"

func users() map[string]mqtttest.User {
	return map[string]mqtttest.User{
		gw.Gateway: {Password: secret, Prefix: gw.Prefix() + "/"},
		ingestUser: {Password: ingestSecret}, // plays the cloud's ingest: reads telemetry, writes down/ack
	}
}

// startAcker plays the cloud's ingest on broker: every batch it receives
// is answered with a commit acknowledgement.
func startAcker(t *testing.T, url string) *mqtttest.Acker {
	t.Helper()
	return mqtttest.StartAcker(t, url, ingestUser, ingestSecret)
}

func newQueue(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.New(queue.Config{Path: filepath.Join(t.TempDir(), "q.db"), Gateway: gw.Gateway, CommitInterval: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Stop)
	return q
}

func testConfig(broker string) Config {
	return Config{
		Gateway: gw, Broker: broker, Password: secret,
		KeepAlive: 5 * time.Second, ConnectTimeout: 2 * time.Second, PublishTimeout: 10 * time.Second,
		InFlight: 4, BatchMaxReadings: 100, BatchMaxDelay: 50 * time.Millisecond,
		BacklogRate: 1e6, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		CommitTimeout: time.Second, AgentVersion: "test",
	}
}

func startUplink(t *testing.T, cfg Config, q Queue, reg prometheus.Registerer) *Uplink {
	t.Helper()
	u, err := New(cfg, q, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Stop)
	return u
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// producer appends one reading per device every few milliseconds, values
// counting up per device, until stopped; it records how many it appended.
type producer struct {
	q       *queue.Queue
	devices []string
	mu      sync.Mutex
	n       int // readings appended per device
	stop    chan struct{}
	done    chan struct{}
}

func startProducer(t *testing.T, q *queue.Queue, devices ...string) *producer {
	p := &producer{q: q, devices: devices, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			for _, d := range devices {
				if _, err := q.Add([]protocol.Reading{{Device: d, Metric: "power_w", TS: baseTS + int64(i)*10, Value: float64(i)}}); err != nil {
					t.Error(err)
					return
				}
			}
			p.mu.Lock()
			p.n = i + 1
			p.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *producer) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// received decodes the telemetry batches among msgs.
type received struct {
	seqs     []uint64
	readings map[string][]protocol.Reading // device → readings in arrival order
}

func decodeAll(t *testing.T, msgs []mqtttest.Message) received {
	t.Helper()
	r := received{readings: map[string][]protocol.Reading{}}
	for _, m := range msgs {
		var b protocol.Batch
		if err := protocol.DecodeBatch(m.Payload, &b); err != nil {
			t.Fatalf("telemetry message does not decode: %v", err)
		}
		if b.Gateway != gw.Gateway {
			t.Fatalf("batch from gateway %q", b.Gateway)
		}
		r.seqs = append(r.seqs, b.Seq)
		for _, rd := range b.Readings {
			r.readings[rd.Device] = append(r.readings[rd.Device], rd)
		}
	}
	return r
}

// checkComplete asserts that every device's values 0…n-1 arrived, each at
// least once, and returns how many arrived twice (re-sent batches).
func checkComplete(t *testing.T, r received, devices []string, n int) int {
	t.Helper()
	dups := 0
	for _, d := range devices {
		seen := make([]int, n)
		for _, rd := range r.readings[d] {
			if v := int(rd.Value); v < n {
				seen[v]++
				if rd.TS != baseTS+int64(v)*10 {
					t.Fatalf("%s reading %d carries ts %d, want its original %d", d, v, rd.TS, baseTS+int64(v)*10)
				}
			}
		}
		for v, c := range seen {
			if c == 0 {
				t.Fatalf("%s reading %d of %d never arrived", d, v, n)
			}
			dups += c - 1
		}
	}
	return dups
}

// lanesOrdered asserts that each device's first arrivals form at most
// maxLanes interleaved increasing sequences (mqtttest.ArrivalLanes): two
// (live and backlog), or three where batches a broker lost come again
// after their commit timeout.
func lanesOrdered(t *testing.T, r received, maxLanes int) {
	t.Helper()
	for d, rs := range r.readings {
		ts := make([]int64, len(rs))
		for i, rd := range rs {
			ts[i] = rd.TS
		}
		if n := mqtttest.ArrivalLanes(ts); n > maxLanes {
			t.Fatalf("device %s: readings arrive as %d interleaved sequences, want at most %d", d, n, maxLanes)
		}
	}
}

func statusOf(t *testing.T, m mqtttest.Message) protocol.Status {
	t.Helper()
	st, err := protocol.DecodeStatus(m.Payload)
	if err != nil {
		t.Fatalf("status does not decode: %v", err)
	}
	return st
}

// A batch stays in the queue while in flight (no PUBACK) and while it
// awaits its commit acknowledgement; the acknowledgement deletes it.
func TestDeletesOnlyAfterCommitAck(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	acker := startAcker(t, broker.URL())
	acker.Silent(true)
	q := newQueue(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := q.Append(ctx, []protocol.Reading{{Device: "pump-1", Metric: "power_w", TS: baseTS + int64(i)*10, Value: float64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	broker.Hold(gw.Topic(protocol.KindTelemetry))
	reg := prometheus.NewRegistry()
	u := startUplink(t, testConfig(broker.URL()), q, reg)
	waitFor(t, 10*time.Second, "a batch in flight", func() bool { return q.Stats().InFlightBatches > 0 })
	if st := q.Stats(); st.Items != 10 {
		t.Fatalf("items deleted before the PUBACK: %+v", st)
	}
	broker.Release()
	waitFor(t, 10*time.Second, "PUBACK", func() bool { st := q.Stats(); return st.InFlightBatches == 0 && st.AwaitingBatches > 0 })
	if st := q.Stats(); st.Items != 10 || st.AwaitingReadings != 10 {
		t.Fatalf("items deleted before the commit acknowledgement: %+v", st)
	}
	acker.Send(t, gw, protocol.Ack{Epoch: q.Epoch(), Committed: []protocol.SeqRange{{1, 100}}})
	waitFor(t, 10*time.Second, "queue empty", func() bool { st := q.Stats(); return st.Items == 0 && st.AwaitingBatches == 0 })
	r := decodeAll(t, broker.Messages(gw.Topic(protocol.KindTelemetry)))
	if dups := checkComplete(t, r, []string{"pump-1"}, 10); dups != 0 {
		t.Fatalf("%d readings arrived twice without a reconnect", dups)
	}
	if !u.Connected() {
		t.Fatal("not connected")
	}
	st, ok := broker.Retained(gw.Topic(protocol.KindStatus))
	if !ok || statusOf(t, st).State != protocol.StateOnline || statusOf(t, st).Agent != "test" {
		t.Fatalf("retained status %+v", st)
	}
	// Stored before the connection: backlog.
	if got := testutil.ToFloat64(u.m.readings.WithLabelValues("backlog")); got != 10 {
		t.Fatalf("published backlog readings metric %v, want 10", got)
	}
	if got := testutil.ToFloat64(u.m.acks.WithLabelValues("applied")); got != 1 {
		t.Fatalf("applied acks metric %v, want 1", got)
	}
	u.Stop()
	st, ok = broker.Retained(gw.Topic(protocol.KindStatus))
	if s := statusOf(t, st); !ok || s.State != protocol.StateOffline || s.Reason != "shutdown" {
		t.Fatalf("status after Stop: %+v", s)
	}
}

func TestWindowBoundsUnacknowledged(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	q := newQueue(t)
	for i := 0; i < 50; i++ { // 50 items of 100 readings: one batch each
		rs := make([]protocol.Reading, 100)
		for j := range rs {
			rs[j] = protocol.Reading{Device: "meter-1", Metric: "power_w", TS: baseTS + int64(i*100+j), Value: float64(i*100 + j)}
		}
		if _, err := q.Add(rs); err != nil {
			t.Fatal(err)
		}
	}
	broker.Hold(gw.Topic(protocol.KindTelemetry))
	startAcker(t, broker.URL())
	cfg := testConfig(broker.URL())
	u := startUplink(t, cfg, q, nil)
	waitFor(t, 10*time.Second, "a full window", func() bool { return q.Stats().InFlightBatches >= cfg.InFlight-1 })
	if n := q.Stats().InFlightBatches; n > cfg.InFlight {
		t.Fatalf("%d batches in flight, window is %d", n, cfg.InFlight)
	}
	broker.Release()
	waitFor(t, 20*time.Second, "queue empty", func() bool { return q.Stats().Items == 0 })
	_ = u
}

func TestWrongPasswordKeepsRetrying(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	q := newQueue(t)
	cfg := testConfig(broker.URL())
	cfg.Password = "wrong"
	reg := prometheus.NewRegistry()
	u := startUplink(t, cfg, q, reg)
	waitFor(t, 10*time.Second, "three refused attempts", func() bool { return testutil.ToFloat64(u.m.connectErrors) >= 3 })
	if u.Connected() || broker.Connects(gw.Gateway) != 0 {
		t.Fatal("connected with a wrong password")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Gateway: gw, Broker: "http://x:1"},
		{Gateway: gw, Broker: "tcp://hostonly"},
		{Gateway: protocol.GatewayRef{Company: "a b"}, Broker: "tcp://x:1"},
		{Gateway: gw, Broker: "tcp://x:1", InFlight: 1},
		{Gateway: gw, Broker: "ssl://x:1", TLS: TLSFiles{CA: "/nonexistent/ca.pem"}},
		{Gateway: gw, Broker: "ssl://x:1", TLS: TLSFiles{Cert: "c.pem"}},
	} {
		if _, err := New(c, nil, nil, nil); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for i := 0; i < 1000; i++ {
		d := Jitter(time.Second)
		if d < 500*time.Millisecond || d >= time.Second {
			t.Fatalf("Jitter(1s) = %s", d)
		}
	}
}

// TLS with a private CA and a client certificate, as a cloud broker on the
// internet would be reached.
func TestTLSWithClientCertificate(t *testing.T) {
	files := mqtttest.NewTLSFiles(t)
	broker := mqtttest.StartMochiTLS(t, users(), files.Server)
	q := newQueue(t)
	if err := q.Append(context.Background(), []protocol.Reading{{Device: "meter-1", Metric: "power_w", TS: baseTS, Value: 1}}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(broker.URL())
	cfg.TLS = TLSFiles{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey}
	u := startUplink(t, cfg, q, nil)
	waitFor(t, 10*time.Second, "batch acknowledged over TLS", func() bool { return q.Stats().AwaitingBatches == 1 })
	if !u.Connected() || len(broker.Messages(gw.Topic(protocol.KindTelemetry))) != 1 {
		t.Fatal("batch not delivered over TLS")
	}

	// Without the client certificate the broker refuses the handshake.
	q2 := newQueue(t)
	cfg.TLS = TLSFiles{CA: files.CA}
	cfg.ClientID = "gw-test-1-nocert"
	reg := prometheus.NewRegistry()
	u2 := startUplink(t, cfg, q2, reg)
	waitFor(t, 10*time.Second, "refused attempts", func() bool { return testutil.ToFloat64(u2.m.connectErrors) >= 2 })
	if u2.Connected() {
		t.Fatal("connected without a client certificate")
	}
}

// Events go out once each (without a reconnect), in seq order, and are
// deleted after their PUBACK.
func TestEventsSentOnceInOrder(t *testing.T) {
	broker := mqtttest.StartMochi(t, users())
	q := newQueue(t)
	for i := 0; i < 5; i++ {
		if err := q.AddEvent(protocol.Event{Kind: protocol.EventDeviceOffline, Device: "pump-1"}); err != nil {
			t.Fatal(err)
		}
	}
	startAcker(t, broker.URL())
	u := startUplink(t, testConfig(broker.URL()), q, nil)
	waitFor(t, 10*time.Second, "events acknowledged", func() bool { return q.Stats().Events == 0 && len(broker.Messages(gw.Topic(protocol.KindEvents))) >= 5 })
	// A few more rounds of the session loop must not send them again.
	if err := q.Append(context.Background(), []protocol.Reading{{Device: "pump-1", Metric: "power_w", TS: baseTS, Value: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a batch after the events", func() bool { return q.Stats().Items == 0 })
	msgs := broker.Messages(gw.Topic(protocol.KindEvents))
	if len(msgs) != 5 {
		t.Fatalf("%d event messages for 5 events", len(msgs))
	}
	for i, m := range msgs {
		e, err := protocol.DecodeEvent(m.Payload)
		if err != nil || e.Seq != uint64(i+1) || e.Gateway != gw.Gateway {
			t.Fatalf("event %d: %+v, %v", i, e, err)
		}
	}
	_ = u
}
