package alarm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/protocol"
)

func TestDeviceStale(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	gw := r.gw(gwGarden)
	el := "garden-elevator-2"
	// From ingest: device_stale raises, a reading clears after the hold.
	r.clock.Set(t0)
	r.e.ObserveEvent(ctx, gw, protocol.Event{Gateway: gwGarden, Seq: 1, Kind: EventDeviceStale, Device: el, TS: t0.UnixMilli()}, t0)
	a := r.active(el, "device-stale")
	if a == nil || a.Severity != "minor" {
		t.Fatalf("stale alarm %+v", a)
	}
	r.read(gwGarden, el, "floor", 10*time.Second, 3)
	r.read(gwGarden, el, "floor", 20*time.Second, 3)
	r.read(gwGarden, el, "floor", 30*time.Second, 3)
	r.tick(39 * time.Second)
	if r.active(el, "device-stale") == nil {
		t.Fatal("stale alarm cleared before the hold")
	}
	r.read(gwGarden, el, "floor", 40*time.Second, 3)
	if r.active(el, "device-stale") != nil {
		t.Fatal("stale alarm not cleared 30s after readings resumed")
	}
	// The engine's own watch: nothing for the rule's 11m (two edge
	// heartbeats; the demo rule's after) since the last reading at 40s.
	r.tick(40*time.Second + 11*time.Minute - time.Second)
	if r.active(el, "device-stale") != nil {
		t.Fatal("stale before 11m of silence")
	}
	r.tick(40*time.Second + 11*time.Minute + time.Second)
	a = r.active(el, "device-stale")
	if a == nil || !a.RaisedAt.Equal(t0.Add(40*time.Second+11*time.Minute)) {
		t.Fatalf("watch: stale alarm %+v, want raised 11m after the last reading", a)
	}
	// A device that was never seen since start is left to ingest's events.
	if r.active("garden-elevator-1", "device-stale") != nil {
		t.Fatal("stale raised for a device never seen")
	}
	// Device events from the edge mean the same.
	r.e.ObserveEvent(ctx, gw, protocol.Event{Gateway: gwGarden, Seq: 2, Kind: protocol.EventDeviceOffline, Device: "garden-pump-2", TS: t0.UnixMilli()}, t0.Add(12*time.Minute))
	if r.active("garden-pump-2", "device-stale") == nil {
		t.Fatal("device_offline from the edge did not raise")
	}
	// An event naming another gateway's device changes nothing.
	r.e.ObserveEvent(ctx, gw, protocol.Event{Gateway: gwGarden, Seq: 3, Kind: EventDeviceStale, Device: "tower-pump-1", TS: t0.UnixMilli()}, t0)
	if r.active("tower-pump-1", "device-stale") != nil {
		t.Fatal("gateway raised an alarm on a device of another gateway")
	}
}

func TestGatewayOffline(t *testing.T) {
	r := newRig(t, nil, nil)
	r.e.cfg.StartGrace = 0 // the rule itself, long after the start (TestStartGrace has the grace)
	ctx := context.Background()
	gw := r.gw("gw-tower-1")
	r.clock.Set(t0)
	r.e.ObserveStatus(ctx, gw, protocol.Status{Gateway: "gw-tower-1", State: protocol.StateOffline, Reason: "last_will"}, t0)
	r.tick(119 * time.Second)
	if r.active("gw-tower-1", "gateway-offline") != nil {
		t.Fatal("offline alarm before the rule's 2m")
	}
	r.tick(121 * time.Second)
	a := r.active("gw-tower-1", "gateway-offline")
	if a == nil || a.Category != CategoryGateway || a.Device != "" || a.Project != "tower" || !a.RaisedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("gateway alarm %+v", a)
	}
	// Back online: telemetry (or the online status) clears it after the hold.
	r.read("gw-tower-1", "tower-pump-1", pressure, 3*time.Minute, 3)
	r.tick(3*time.Minute + 31*time.Second)
	if r.active("gw-tower-1", "gateway-offline") != nil {
		t.Fatal("gateway alarm not cleared after the gateway came back")
	}
	// A short drop below the 2m never raises.
	r.clock.Set(t0.Add(10 * time.Minute))
	r.e.ObserveStatus(ctx, gw, protocol.Status{Gateway: "gw-tower-1", State: protocol.StateOffline}, t0.Add(10*time.Minute))
	r.e.ObserveStatus(ctx, gw, protocol.Status{Gateway: "gw-tower-1", State: protocol.StateOnline}, t0.Add(11*time.Minute))
	r.tick(15 * time.Minute)
	if n := r.log.count(EventRaise, "gateway-offline"); n != 1 {
		t.Fatalf("%d gateway-offline raises, want 1", n)
	}
}

func TestQueueOverflow(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	gw := r.gw(gwGarden)
	over := func(seq uint64, at time.Duration, dropped float64) {
		ts := t0.Add(at)
		r.clock.Set(ts)
		r.e.ObserveEvent(ctx, gw, protocol.Event{Gateway: gwGarden, Seq: seq, Kind: protocol.EventQueueOverflow, TS: ts.UnixMilli(),
			Attrs: map[string]float64{"dropped": dropped}}, ts)
	}
	over(1, 0, 120)
	a := r.active(gwGarden, "gateway-queue-overflow")
	if a == nil || a.Value != 120 || a.Severity != "major" {
		t.Fatalf("overflow alarm %+v", a)
	}
	over(2, time.Minute, 80)
	over(2, time.Minute, 80) // redelivered
	a = r.active(gwGarden, "gateway-queue-overflow")
	if a == nil || a.Count != 2 {
		t.Fatalf("overflow alarm %+v: want one alarm counting 2 overflows", a)
	}
	r.tick(10*time.Minute + 59*time.Second)
	if r.active(gwGarden, "gateway-queue-overflow") == nil {
		t.Fatal("cleared before 10 quiet minutes")
	}
	r.tick(11*time.Minute + time.Second)
	if r.active(gwGarden, "gateway-queue-overflow") != nil {
		t.Fatal("not cleared after 10 quiet minutes")
	}
	if n := r.log.count(EventRaise, "gateway-queue-overflow"); n != 1 {
		t.Fatalf("%d raises", n)
	}
}

func TestRedeliveredBatchChangesNothing(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	gw := r.gw(gwGarden)
	var batches []*protocol.Batch
	for i := 0; i < 8; i++ {
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		v := 1.5
		if i >= 5 {
			v = 3
		}
		batches = append(batches, &protocol.Batch{Epoch: 1, Gateway: gwGarden, Seq: uint64(i + 1), SentAt: ts.UnixMilli(), Readings: []protocol.Reading{
			{Device: pump, Metric: pressure, TS: ts.UnixMilli(), Value: v},
			{Device: "garden-elevator-1", Metric: "trapped", TS: ts.UnixMilli(), Value: float64(i % 2)},
		}})
	}
	feedAll := func() {
		for _, b := range batches {
			r.clock.Set(time.UnixMilli(b.SentAt))
			r.e.ObserveBatch(ctx, gw, b, time.UnixMilli(b.SentAt))
		}
	}
	feedAll()
	want := r.log.kinds()
	if len(want) == 0 {
		t.Fatal("no events from the first delivery")
	}
	feedAll()
	// Redelivery of one batch in the middle, out of order.
	r.e.ObserveBatch(ctx, gw, batches[2], t0.Add(time.Hour))
	if got := r.log.kinds(); len(got) != len(want) {
		t.Fatalf("redelivery added events:\nfirst %v\nnow   %v", want, got)
	}
}

func TestAckScope(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	r.read(gwGarden, "garden-elevator-1", "trapped", 0, 1)
	id := r.active("garden-elevator-1", "elevator-trapped").ID
	if _, err := r.e.Ack(ctx, pmTower, id, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("other project's manager: %v, want not found", err)
	}
	if _, err := r.e.Ack(ctx, otherCo, id, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("other company: %v, want not found", err)
	}
	if _, err := r.e.Ack(ctx, hqViewer, id, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("hq viewer: %v, want forbidden", err)
	}
	if _, err := r.e.Ack(ctx, techGarden, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	a, err := r.e.Ack(ctx, techGarden, id, "seen")
	if err != nil || !a.Acked || a.AckedBy != "tech-garden-1" || !a.AckedAt.Equal(t0) || a.State != StateActive {
		t.Fatalf("ack: %v %+v", err, a)
	}
	if _, err := r.e.Ack(ctx, pmGarden, id, "again"); err != nil {
		t.Fatal(err)
	}
	if n := r.log.count(EventAck, "elevator-trapped"); n != 1 {
		t.Errorf("%d ack events, want 1", n)
	}
	// Views are scoped too.
	if got := alarmsOf(t, r.e, pmTower, Filter{}); len(got) != 0 {
		t.Errorf("tower manager sees garden alarms: %+v", got)
	}
	if got := alarmsOf(t, r.e, techGarden, Filter{Project: "garden", State: StateActive, Severity: "critical"}); len(got) != 1 {
		t.Errorf("garden technician: %+v", got)
	}
	if _, err := r.e.Alarm(context.Background(), techTower, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("tower technician reads a garden alarm: %v", err)
	}
}

func TestStorageFailureKeepsEventsForRetry(t *testing.T) {
	log := &memLog{}
	r := newRig(t, nil, log)
	log.SetFail(errDown)
	r.read(gwGarden, "garden-elevator-1", "trapped", 0, 1)
	r.read(gwGarden, "garden-elevator-1", "trapped", time.Minute, 0)
	r.read(gwGarden, "garden-elevator-1", "trapped", 2*time.Minute, 0)
	if len(r.log.kinds()) != 0 {
		t.Fatal("stored while failing")
	}
	if len(r.events) != 2 {
		t.Fatalf("sinks got %d events while storage failed, want 2", len(r.events))
	}
	log.SetFail(nil)
	r.read(gwGarden, "garden-elevator-1", "trapped", 3*time.Minute, 1)
	got := r.log.kinds()
	if len(got) != 3 || got[0] != "raise elevator-trapped garden-elevator-1" || got[1] != "clear elevator-trapped garden-elevator-1" {
		t.Fatalf("after recovery stored %v, want raise, clear, raise in order", got)
	}
}

func TestObserveBeforeStartIsDropped(t *testing.T) {
	b := loadBundle(t)
	log := &memLog{}
	e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := b.Org.FindGateway(gwGarden)
	e.ObserveBatch(context.Background(), gw, &protocol.Batch{Epoch: 1, Gateway: gwGarden, Readings: []protocol.Reading{
		{Device: "garden-elevator-1", Metric: "trapped", TS: t0.UnixMilli(), Value: 1}}}, t0)
	if len(log.kinds()) != 0 || len(alarmsOf(t, e, hqAdmin, Filter{})) != 0 {
		t.Fatal("evaluated before Start")
	}
	e.Stop()
	e.Stop()
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{TickInterval: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Org: required", "Rules: required", "Log: required", "TickInterval: must be >= 0"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestGatewayKnownOfflineAtStart(t *testing.T) {
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: &memLog{}, Now: clock.Now, TickInterval: time.Hour,
		GatewayStatus: func(id string) (bool, time.Time, bool) {
			if id == "gw-tower-1" {
				return true, t0.Add(-90 * time.Second), true // its last will came before the engine started
			}
			return false, time.Time{}, id == gwGarden
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	// Issue 19, point 2: the gateway was offline when the cloud stopped; it
	// gets the start-up grace (6m) to reconnect before its alarm raises.
	e.tick(context.Background(), t0.Add(5*time.Minute+59*time.Second))
	if len(alarmsOf(t, e, hqAdmin, Filter{})) != 0 {
		t.Fatal("raised within the start-up grace")
	}
	e.tick(context.Background(), t0.Add(6*time.Minute+time.Second))
	got := alarmsOf(t, e, hqAdmin, Filter{})
	if len(got) != 1 || got[0].Gateway != "gw-tower-1" || got[0].Rule != "gateway-offline" || !got[0].RaisedAt.Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("alarms %+v: want gw-tower-1 offline raised at the end of the grace", got)
	}
}

// Issue 19, point 2: after a restart, a gateway known offline (its status
// from before the stop) or whose queued last will arrives just after the
// start raises nothing when it reconnects within the grace, even later
// than the rule's 2m; and devices replayed from storage are not stale
// because of the cloud's downtime.
func TestStartGraceRaisesNothingForAHealthyPlant(t *testing.T) {
	b := loadBundle(t)
	clock := fakes.NewClock(t0)
	stopped := t0.Add(-time.Hour) // the cloud was down an hour
	log := &memLog{}
	e, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: log, Now: clock.Now, TickInterval: time.Hour,
		Readings:     replayed{{Gateway: gwGarden, Reading: protocol.Reading{Device: pump, Metric: pressure, TS: stopped.Add(-time.Minute).UnixMilli(), Value: 3}}},
		ReplayWindow: 2 * time.Hour,
		GatewayStatus: func(id string) (bool, time.Time, bool) {
			return id == "gw-tower-1", stopped, true // tower's will from the stop; garden online
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	ctx := context.Background()
	garden, _ := b.Org.FindGateway(gwGarden)
	e.ObserveStatus(ctx, garden, protocol.Status{Gateway: gwGarden, State: protocol.StateOffline, Reason: "last_will"}, t0.Add(time.Second))
	for at := time.Duration(0); at <= 4*time.Minute; at += 10 * time.Second {
		e.tick(ctx, t0.Add(at))
	}
	tower, _ := b.Org.FindGateway("gw-tower-1")
	e.ObserveStatus(ctx, tower, protocol.Status{Gateway: "gw-tower-1", State: protocol.StateOnline, TS: t0.Add(4 * time.Minute).UnixMilli()}, t0.Add(4*time.Minute))
	e.ObserveStatus(ctx, garden, protocol.Status{Gateway: gwGarden, State: protocol.StateOnline, TS: t0.Add(4 * time.Minute).UnixMilli()}, t0.Add(4*time.Minute))
	for at := 4 * time.Minute; at <= 12*time.Minute; at += 10 * time.Second {
		if at == 5*time.Minute {
			e.ObserveBatch(ctx, garden, &protocol.Batch{Gateway: gwGarden, Seq: 1, Readings: []protocol.Reading{
				{Device: pump, Metric: pressure, TS: t0.Add(at).UnixMilli(), Value: 3}}}, t0.Add(at))
		}
		e.tick(ctx, t0.Add(at))
	}
	if evs := log.Events(); len(evs) != 0 {
		t.Fatalf("a restart with every gateway back within the grace raised %v", log.kinds())
	}
}

type replayed []StoredReading

func (r replayed) RecentReadings(context.Context, time.Time, []string) ([]StoredReading, error) {
	return r, nil
}
