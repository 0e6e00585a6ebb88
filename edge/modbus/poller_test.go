package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// TestEveryTemplateEndToEnd polls one simulated device of every shipped
// Modbus template (the lighting panel over RTU over TCP, the others over
// Modbus TCP) and compares each decoded value with the model's value as the
// template's encoding quantises it, at three virtual times.
func TestEveryTemplateEndToEnd(t *testing.T) {
	b := startSim(t,
		sim.DeviceConfig{ID: "meter", Template: "sdm630", BaseLoadKW: 20},
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd", Pair: "pump-2"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "lift", Template: "elevator", Floors: []int{-2, 12}},
		sim.DeviceConfig{ID: "panel", Template: "lighting-panel", Transport: sim.TransportRTUOverTCP},
	)
	ts := shippedTemplates(t)
	covered := map[string]bool{}
	var devs []Device
	for _, d := range []struct{ id, tmpl, transport string }{
		{"meter", "sdm630", "tcp"}, {"pump-1", "pump-vfd", "tcp"}, {"pump-2", "pump-vfd", "tcp"},
		{"lift", "elevator", "tcp"}, {"panel", "lighting-panel", "rtuovertcp"},
	} {
		devs = append(devs, simDevice(t, b, d.id, d.tmpl, d.transport, 20*time.Millisecond))
		covered[d.tmpl] = true
	}
	for id, tm := range ts {
		if tm.Protocol == config.ProtoModbus && !covered[id] {
			t.Errorf("shipped Modbus template %q is not polled by this test", id)
		}
	}
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	p := startPoller(t, rec, Options{MaxGap: DefaultMaxGap, Registerer: reg}, devs...)

	for _, step := range []time.Duration{0, 20 * time.Minute, 13 * time.Hour} {
		if err := b.Advance(step); err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			// The second poll after Advance started after it returned.
			n := rec.count(d.ID)
			eventually(t, 5*time.Second, d.ID+" polled twice", func() bool { return rec.count(d.ID) >= n+2 })
			compareWithModel(t, b, d, rec.lastReadings(d.ID))
		}
	}
	stats := p.Stats()
	for _, d := range devs {
		s := stats[d.ID]
		want, _ := Plan(d.Template, DefaultMaxGap)
		if !s.Online || len(s.Errors) != 0 || s.RequestsPerPoll != len(want) || s.PointsRead == 0 || s.Polls == 0 {
			t.Errorf("%s stats = %+v, want online, no errors, %d requests per poll", d.ID, s, len(want))
		}
	}
	checkMetric(t, reg, "plantroom_edge_modbus_requests_per_poll", map[string]string{"device": "meter"}, 2)
	checkMetric(t, reg, "plantroom_edge_modbus_device_online", map[string]string{"device": "panel"}, 1)
	if v := metricValue(t, reg, "plantroom_edge_modbus_points_read_total", map[string]string{"device": "lift"}); v < 12 {
		t.Errorf("points read of lift = %v, want at least one poll's 12", v)
	}
}

// compareWithModel checks one poll's readings against the simulated model.
func compareWithModel(t *testing.T, b *sim.Building, d Device, rs []protocol.Reading) {
	t.Helper()
	want, err := b.Values(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range rs {
		if r.Quality != protocol.QualityGood || r.TS < protocol.MinTimestamp {
			t.Errorf("%s: reading %+v: want quality good and a current timestamp", d.ID, r)
		}
		if r.TS != rs[0].TS {
			t.Errorf("%s: readings of one poll with different timestamps: %d, %d", d.ID, r.TS, rs[0].TS)
		}
		got[r.Metric] = r.Value
	}
	for _, pt := range d.Template.Points {
		v, ok := got[pt.Metric]
		if !ok {
			t.Errorf("%s: no reading of %s", d.ID, pt.Metric)
			continue
		}
		if w := sim.Quantizer(d.Template, pt.Metric)(want[pt.Metric]); v != w {
			t.Errorf("%s: %s = %v, model says %v (unquantised %v)", d.ID, pt.Metric, v, w, want[pt.Metric])
		}
	}
	if len(got) != len(d.Template.Points) {
		t.Errorf("%s: %d readings, want %d", d.ID, len(got), len(d.Template.Points))
	}
}

// metricValue returns the value of one series (counter, gauge, or a
// histogram's sample count).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func checkMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := metricValue(t, reg, name, labels); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestReadingTimestamps: every reading of a poll carries the poll's time
// from Options.Now.
func TestReadingTimestamps(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump", Template: "pump-vfd"})
	at := time.Date(2026, 9, 16, 8, 30, 0, 0, time.UTC)
	rec := newRecorder()
	startPoller(t, rec, Options{Now: func() time.Time { return at }}, simDevice(t, b, "pump", "pump-vfd", "tcp", 20*time.Millisecond))
	eventually(t, 5*time.Second, "a poll", func() bool { return rec.count("pump") > 0 })
	for _, r := range rec.lastReadings("pump") {
		if r.TS != at.UnixMilli() {
			t.Errorf("%s at %d, want %d", r.Metric, r.TS, at.UnixMilli())
		}
	}
}

func TestPollerLifecycle(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump", Template: "pump-vfd"})
	rec := newRecorder()
	if _, err := NewPoller(nil, Options{}); err == nil || !strings.Contains(err.Error(), "no sink") {
		t.Errorf("NewPoller without sink: %v", err)
	}
	if _, err := NewPoller(nil, Options{Sink: rec.sink, MaxGap: -1}); err == nil {
		t.Error("NewPoller with a negative gap fill: no error")
	}
	p, err := NewPoller([]Device{simDevice(t, b, "pump", "pump-vfd", "tcp", 10*time.Millisecond)}, Options{Sink: rec.sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err == nil {
		t.Error("second Start: no error")
	}
	eventually(t, 5*time.Second, "polls", func() bool { return rec.count("pump") >= 3 })
	p.Stop()
	p.Stop()
	n := rec.count("pump")
	// After Stop returned no poll goroutine is left to call the sink: a
	// poll interval of 10 ms would have added some within 100 ms.
	time.Sleep(100 * time.Millisecond)
	if m := rec.count("pump"); m != n {
		t.Errorf("%d sink calls after Stop", m-n)
	}
	if err := p.Update(nil); err == nil {
		t.Error("Update after Stop: no error")
	}
	if err := p.Start(ctx); err == nil {
		t.Error("Start after Stop: no error")
	}
}

func TestUpdate(t *testing.T) {
	b := startSim(t,
		sim.DeviceConfig{ID: "meter", Template: "sdm630"},
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd"},
	)
	meter := simDevice(t, b, "meter", "sdm630", "tcp", 20*time.Millisecond)
	pump1 := simDevice(t, b, "pump-1", "pump-vfd", "tcp", 20*time.Millisecond)
	pump2 := simDevice(t, b, "pump-2", "pump-vfd", "tcp", 20*time.Millisecond)
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	p := startPoller(t, rec, Options{Registerer: reg}, meter, pump1)
	eventually(t, 5*time.Second, "first polls", func() bool { return rec.count("meter") >= 2 && rec.count("pump-1") >= 2 })

	// A bad list changes nothing.
	bad := pump2
	bad.Address = "tcp://127.0.0.1:0"
	if err := p.Update([]Device{pump1, bad}); err == nil || !strings.Contains(err.Error(), "devices[1].address") {
		t.Fatalf("Update with a bad address: %v", err)
	}
	if s := p.Stats(); len(s) != 2 || s["meter"].Polls == 0 {
		t.Fatalf("stats after a refused update: %v", s)
	}

	// Remove the meter, keep pump-1 (an equal template loaded again), add pump-2.
	before := p.Stats()["pump-1"].Polls
	pump1Again := simDevice(t, b, "pump-1", "pump-vfd", "tcp", 20*time.Millisecond)
	if err := p.Update([]Device{pump1Again, pump2}); err != nil {
		t.Fatal(err)
	}
	stats := p.Stats()
	if _, ok := stats["meter"]; ok || len(stats) != 2 {
		t.Errorf("stats after removing the meter: %v", keys(stats))
	}
	if stats["pump-1"].Polls < before {
		t.Errorf("pump-1 restarted by an update that did not change it: %d polls, had %d", stats["pump-1"].Polls, before)
	}
	m := rec.count("meter")
	eventually(t, 5*time.Second, "pump-2 polled", func() bool { return rec.count("pump-2") >= 2 })
	n1 := rec.count("pump-1")
	eventually(t, 5*time.Second, "pump-1 polling on", func() bool { return rec.count("pump-1") >= n1+3 })
	if got := rec.count("meter"); got != m {
		t.Errorf("removed meter still polled: %d calls after the update", got-m)
	}
	if v := metricValue(t, reg, "plantroom_edge_modbus_requests_per_poll", map[string]string{"device": "meter"}); v != -1 {
		t.Errorf("removed meter still has a requests_per_poll series (%v)", v)
	}

	// A changed setting restarts the device with fresh statistics.
	pump1Slow := pump1
	pump1Slow.PollInterval = time.Hour
	if err := p.Update([]Device{pump1Slow, pump2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "pump-1 restarted", func() bool { return p.Stats()["pump-1"].Polls == 1 })
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	var got []time.Duration
	for f := 0; f <= 9; f++ {
		got = append(got, backoff(100*ms, 2*time.Second, f, 3))
	}
	want := []time.Duration{100 * ms, 100 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 2000 * ms}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff after 0..9 failures = %v, want %v", got, want)
		}
	}
	if d := backoff(5*time.Minute, 2*time.Minute, 10, 3); d != 5*time.Minute {
		t.Errorf("backoff never polls less often than the interval... got %s for a 5m interval", d)
	}
	if d := backoff(time.Second, time.Hour, 1000, 1); d != time.Hour {
		t.Errorf("backoff after 1000 failures = %s, want the cap", d)
	}
}

func TestCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", closed)
	cases := []struct {
		err  error
		want string
	}{
		{refused, CauseConnection},
		{io.EOF, CauseConnection},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), CauseConnection},
		{fmt.Errorf("cannot open serial port %q: %w", "/dev/x", &os.PathError{Op: "open", Path: "/dev/x", Err: os.ErrNotExist}), CauseConnection},
		{os.ErrDeadlineExceeded, CauseTimeout},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, CauseTimeout},
		{&modbus.ModbusError{FunctionCode: 0x83, ExceptionCode: 2}, "exception_2"},
		{fmt.Errorf("wrapped: %w", &modbus.ModbusError{FunctionCode: 0x84, ExceptionCode: 11}), "exception_11"},
		{errors.New("modbus: response transaction id '7' does not match request '8'"), CauseFrame},
		{errFrame, CauseFrame},
		{fmt.Errorf("%w: x", ErrInvalidValue), CauseInvalidValue},
		{fmt.Errorf("%w: x", ErrDecode), CauseDecode},
	}
	for _, tc := range cases {
		if got := cause(tc.err); got != tc.want {
			t.Errorf("cause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
