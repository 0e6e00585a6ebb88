package ingest

import (
	"net"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"
)

func (r *recorder) statusStates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.statuses {
		out = append(out, s.State)
	}
	return out
}

func TestGatewayOnlineAndLastWill(t *testing.T) {
	e := newEnv(t, envOptions{})
	var mu sync.Mutex
	var conn net.Conn
	will := protocol.EncodeStatus(protocol.Status{Gateway: "gw-garden-1", State: protocol.StateOffline, Reason: "last_will"})
	gw := e.gateway(garden, "gw-garden-1", func(o *paho.ClientOptions) {
		o.SetBinaryWill(garden.Topic(protocol.KindStatus), will, 1, true)
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", u.Host)
			mu.Lock()
			conn = c
			mu.Unlock()
			return c, err
		})
	})
	online := time.Now().Truncate(time.Millisecond)
	tok := gw.Publish(garden.Topic(protocol.KindStatus), 1, true, protocol.EncodeStatus(protocol.Status{
		Gateway: "gw-garden-1", State: protocol.StateOnline, TS: online.UnixMilli(), Agent: "edge-agent/1.0"}))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, 10*time.Second, "the gateway to be online", func() bool {
		g, _ := e.ingest.Presence().Gateway("gw-garden-1")
		return g.Online
	})
	g, _ := e.ingest.Presence().Gateway("gw-garden-1")
	if !g.Since.Equal(online) || g.Agent != "edge-agent/1.0" {
		t.Errorf("online state %+v, want since %v, agent edge-agent/1.0", g, online)
	}

	// The connection dies without a DISCONNECT: the broker sends the will.
	mu.Lock()
	conn.Close()
	mu.Unlock()
	waitFor(t, 10*time.Second, "the last will", func() bool {
		g, _ := e.ingest.Presence().Gateway("gw-garden-1")
		return g.Known && !g.Online
	})
	g, _ = e.ingest.Presence().Gateway("gw-garden-1")
	if g.Reason != "last_will" {
		t.Errorf("offline reason %q, want last_will", g.Reason)
	}
	waitFor(t, 5*time.Second, "observers to hear online and offline", func() bool {
		s := e.obs.statusStates()
		return len(s) == 2 && s[0] == "online" && s[1] == "offline"
	})
	if n := e.count("SELECT count() FROM events FINAL WHERE gateway = 'gw-garden-1' AND kind IN ('gateway_online', 'gateway_offline')"); n != 2 {
		t.Errorf("%d status events stored, want 2", n)
	}

	// A restarted ingest rebuilds the state from ClickHouse; the retained
	// will it receives on subscribing is not stored a second time.
	e.ingest.Stop()
	in := e.startIngest()
	offlineSince := g.Since
	g, _ = in.Presence().Gateway("gw-garden-1")
	if !g.Known || g.Online || g.Reason != "last_will" || !g.Since.Equal(offlineSince) {
		t.Errorf("rebuilt state %+v, want offline by last_will since %v", g, offlineSince)
	}
	waitFor(t, 5*time.Second, "the retained status to be processed", func() bool {
		return e.metric(in.metrics.messages.WithLabelValues("status")) == 1 && e.metric(in.metrics.unacked) == 0
	})
	if g, _ := in.Presence().Gateway("gw-garden-1"); !g.Since.Equal(offlineSince) {
		t.Errorf("the replayed retained will moved the offline time from %v to %v", offlineSince, g.Since)
	}
	if n := e.count("SELECT count() FROM events WHERE kind IN ('gateway_online', 'gateway_offline')"); n != 2 {
		t.Errorf("%d status rows after the restart, want 2", n)
	}
}

func TestDeviceStaleAndFresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	gw := e.gateway(garden, "gw-garden-1", nil)
	send := func(seq uint64, ahead time.Duration) {
		ts := time.Now().Add(ahead).UnixMilli()
		b := &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: seq, SentAt: ts, Readings: []protocol.Reading{
			{Device: "garden-pump-2", Metric: "running", TS: ts, Value: 1}}}
		publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, b))
	}
	last := func() string {
		k := e.obs.eventKinds("garden-pump-2")
		if len(k) == 0 {
			return ""
		}
		return k[len(k)-1]
	}
	// 200 ms poll interval, stale after 3 of them.
	send(1, 0)
	waitFor(t, 10*time.Second, "device_stale after the readings stopped", func() bool { return last() == EventDeviceStale })
	if d, _ := e.ingest.Presence().Device("garden-pump-2"); !d.Stale || d.StaleAfter != 600*time.Millisecond {
		t.Errorf("presence %+v, want stale after 600ms", d)
	}
	// Stamped 2 s ahead (well within max_future_skew): the reading must
	// still be fresh when its commit returns, which on a loaded machine can
	// take longer than the 600 ms stale window.
	// Under heavier load the device may already have gone stale again by
	// the time this looks (the stale watch runs on): wanted is a
	// device_fresh after the first stale, not that it is the last event.
	send(2, 2*time.Second)
	waitFor(t, 10*time.Second, "device_fresh after a new reading", func() bool {
		return slices.Contains(e.obs.eventKinds("garden-pump-2"), EventDeviceFresh)
	})
	kinds := e.obs.eventKinds("garden-pump-2")
	for i := 1; i < len(kinds); i++ {
		if kinds[i] == kinds[i-1] {
			t.Errorf("repeated transition in %v", kinds)
		}
	}
	// Derived events are stored like gateway events; the meters that poll
	// hourly are not stale.
	waitFor(t, 5*time.Second, "stored device events", func() bool {
		return e.count("SELECT count() FROM events FINAL WHERE device = 'garden-pump-2' AND kind = 'device_stale'") >= 1 &&
			e.count("SELECT count() FROM events FINAL WHERE device = 'garden-pump-2' AND kind = 'device_fresh'") >= 1
	})
	if k := e.obs.eventKinds("garden-meter-main"); len(k) != 0 {
		t.Errorf("hourly meter got %v", k)
	}
}
