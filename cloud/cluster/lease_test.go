package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

const servicePassword = "lease-test-secret"

// brokers are the two real brokers the lease must work on.
var brokers = []struct {
	name  string
	start func(t *testing.T) string // address
}{
	{"embedded", func(t *testing.T) string {
		var org config.Org
		if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
			t.Fatal(err)
		}
		b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: &org,
			Services: []broker.Service{{Username: "plantroom-ingest", PasswordHash: "sha256:" + sha256hex(servicePassword),
				Publish: append([]string{Topics}, broker.IngestPublish...)}},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		return b.Addr()
	}},
	{"mosquitto", func(t *testing.T) string {
		return nettest.StartMosquitto(t, nettest.MosquittoOptions{}).Addr()
	}},
}

// member is one process's lease and what it saw.
type member struct {
	lease    *Lease
	observed chan Observation
	lost     chan error
	acquired chan struct{}
}

func newMember(t *testing.T, url, name string) *member {
	t.Helper()
	m := &member{observed: make(chan Observation, 16), lost: make(chan error, 1), acquired: make(chan struct{})}
	var once sync.Once
	l, err := New(Config{URL: url, Username: "plantroom-ingest", Password: servicePassword,
		ClientID: "plantroom-ingest-alarms", Instance: name, Advertise: "http://" + name + ".invalid:8080",
		Candidate: true, Heartbeat: time.Second, KeepAlive: 10 * time.Second,
		OnAcquire:  func(context.Context) error { once.Do(func() { close(m.acquired) }); return nil },
		OnObserved: func(_ context.Context, o Observation) { m.observed <- o },
		OnLost:     func(err error) { m.lost <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	m.lease = l
	return m
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// One member takes the vacant lease, the other follows it and its
// observations reach the owner; the owner's connection cut, the broker's
// last will hands the lease to the follower, the cut one is told it lost
// it, and what is published in between reaches the new owner.
func TestLeaseFollowAndTakeOver(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			addr := b.start(t)
			now := time.Now().UnixMilli()
			proxy := nettest.NewProxy(t, addr)
			a := newMember(t, proxy.URL(), "a")
			receive(t, a.acquired, "a to take the vacant lease")
			if api, self, ok := a.lease.Owner(); !self || !ok || api != "http://a.invalid:8080" {
				t.Errorf("a: Owner() = %q, %v, %v; want itself", api, self, ok)
			}

			bm := newMember(t, "tcp://"+addr, "b")
			waitUntil(t, 30*time.Second, "b to follow a", func() bool {
				api, self, ok := bm.lease.Owner()
				return ok && !self && api == "http://a.invalid:8080"
			})
			bm.lease.Publisher().ObserveStatus(context.Background(), gardenGateway(t), protocol.Status{Gateway: "gw-garden-1", State: "online", TS: now}, time.UnixMilli(now+1))
			o := receive(t, a.observed, "b's observation at a")
			if o.Kind != KindStatus || o.Gateway != "gw-garden-1" || o.Status.State != "online" || o.Status.TS != now || o.Arrived != now+1 {
				t.Errorf("a received %+v", o)
			}
			select {
			case <-bm.acquired:
				t.Fatal("b took the lease a holds")
			default:
			}

			// a's connections reset: the broker publishes a's will.
			proxy.Cut(nettest.CutReset)
			receive(t, a.lost, "a to learn it lost the lease")
			receive(t, bm.acquired, "b to take the lease")
			if _, self, ok := bm.lease.Owner(); !self || !ok {
				t.Error("b does not report itself the owner")
			}
			bm.lease.Publisher().ObserveEvent(context.Background(), gardenGateway(t), protocol.Event{Gateway: "gw-garden-1", Seq: 9, Kind: protocol.EventDeviceOffline, Device: "garden-pump-1", TS: now}, time.UnixMilli(now))
			// QoS 1: the status a received may come again with the
			// session a held; nothing else may.
			for o = receive(t, bm.observed, "b's own observation at b"); o.Kind == KindStatus && o.Status.TS == now; o = receive(t, bm.observed, "b's own observation at b") {
			}
			if o.Kind != KindEvent || o.Event.Seq != 9 || o.Event.Device != "garden-pump-1" {
				t.Errorf("b received %+v", o)
			}
		})
	}
}

// A batch survives the trip: what the ingest accepted is what the owner's
// engine gets.
func TestObservationRoundTrip(t *testing.T) {
	now := time.Now().UnixMilli()
	in := Observation{Gateway: "gw-garden-1", Kind: KindBatch, Arrived: 5, Batch: &protocol.Batch{Epoch: 3, Gateway: "gw-garden-1", Seq: 4, SentAt: now,
		Readings: []protocol.Reading{{Device: "garden-meter-main", Metric: "power_total_w", TS: now - 100, Value: 12.5, Quality: protocol.QualityUncertain}}}}
	p, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeObservation(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Gateway != in.Gateway || out.Arrived != 5 || out.Batch.Epoch != 3 || out.Batch.Seq != 4 || len(out.Batch.Readings) != 1 || out.Batch.Readings[0] != in.Batch.Readings[0] {
		t.Errorf("decoded %+v, batch %+v", out, out.Batch)
	}
	if _, err := DecodeObservation([]byte(`{"gateway":"gw","kind":"teleport","data":""}`)); err == nil {
		t.Error("an unknown kind decoded")
	}
}

func gardenGateway(t *testing.T) config.GatewayInfo {
	t.Helper()
	var org config.Org
	if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	gw, ok := org.FindGateway("gw-garden-1")
	if !ok {
		t.Fatal("no gw-garden-1 in the demo organisation")
	}
	return gw
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
