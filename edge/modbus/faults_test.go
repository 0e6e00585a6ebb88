package modbus

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
)

// TestDeadDeviceDelaysNobody: an unreachable meter next to two live pumps.
// The pumps keep their poll rate while the meter is backed off; counts,
// not wall time, are compared.
func TestDeadDeviceDelaysNobody(t *testing.T) {
	b := startSim(t,
		sim.DeviceConfig{ID: "meter", Template: "sdm630"},
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd"},
	)
	const every = 20 * time.Millisecond
	meter := simDevice(t, b, "meter", "sdm630", "tcp", every)
	meter.Retries = 2
	if err := b.SetFault("meter", sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxBackoff: time.Second}, meter,
		simDevice(t, b, "pump-1", "pump-vfd", "tcp", every), simDevice(t, b, "pump-2", "pump-vfd", "tcp", every))
	eventually(t, 10*time.Second, "40 polls of pump-1", func() bool { return rec.count("pump-1") >= 40 })
	p1, p2 := rec.count("pump-1"), rec.count("pump-2")
	s := p.Stats()
	if p2 < p1*3/4 {
		t.Errorf("pump-2 polled %d times while pump-1 did %d", p2, p1)
	}
	m := s["meter"]
	if m.Online || m.Errors[CauseConnection] == 0 || m.PointsRead != 0 {
		t.Errorf("dead meter: %+v", m)
	}
	// Three failed polls at the interval, then 40, 80, 160 … ms apart: far
	// fewer than the pumps' polls.
	if m.Polls == 0 || m.Polls > uint64(p1)/3 {
		t.Errorf("dead meter polled %d times while the pumps did %d: not backed off", m.Polls, p1)
	}
	if got := rec.stateLog("meter"); len(got) != 1 || got[0] {
		t.Errorf("meter state reports = %v, want one offline", got)
	}
	if c := rec.causes["meter"]; c == nil || cause(c) != CauseConnection {
		t.Errorf("offline cause = %v, want a connection error", c)
	}
	for _, id := range []string{"pump-1", "pump-2"} {
		if st := s[id]; !st.Online || len(st.Errors) != 0 || len(rec.stateLog(id)) != 0 {
			t.Errorf("%s: %+v, state reports %v", id, st, rec.stateLog(id))
		}
	}
}

// TestSlowDeviceOnSharedBus: three devices on one RS-485 line behind an
// RTU-over-TCP converter; the elevator answers 1 s late, past its 100 ms
// timeout. It holds the line for its own timeout per attempt: its first
// request only (the poll ends there), two attempts per poll until it is
// offline, one probe per poll after, and probes ever further apart. So
// the pumps on the line keep polling at about the rate of a meter on a line
// of its own. Poll counts are compared, not wall time.
func TestSlowDeviceOnSharedBus(t *testing.T) {
	b := startSim(t,
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd", Transport: sim.TransportRTUOverTCP, UnitID: 1},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd", Transport: sim.TransportRTUOverTCP, UnitID: 2},
		sim.DeviceConfig{ID: "lift", Template: "elevator", Transport: sim.TransportRTUOverTCP, UnitID: 3},
		sim.DeviceConfig{ID: "meter", Template: "sdm630", Transport: sim.TransportRTUOverTCP, UnitID: 1},
	)
	bus := startBus(t, map[byte]string{1: b.Addr("pump-1"), 2: b.Addr("pump-2"), 3: b.Addr("lift")})
	if err := b.SetFault("lift", sim.Fault{Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	ts := shippedTemplates(t)
	const every = 40 * time.Millisecond
	onBus := func(id, tmpl string, unit byte) Device {
		return Device{ID: id, Template: ts[tmpl], Address: "rtuovertcp://" + bus.addr(), UnitID: unit,
			PollInterval: every, Timeout: 100 * time.Millisecond, Retries: 1}
	}
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxBackoff: time.Second},
		onBus("pump-1", "pump-vfd", 1), onBus("pump-2", "pump-vfd", 2), onBus("lift", "elevator", 3),
		simDevice(t, b, "meter", "sdm630", "rtuovertcp", every))
	eventually(t, 10*time.Second, "lift offline", func() bool { return len(rec.stateLog("lift")) > 0 })
	m0, a0, b0 := rec.count("meter"), rec.count("pump-1"), rec.count("pump-2")
	eventually(t, 15*time.Second, "50 more polls of the meter", func() bool { return rec.count("meter") >= m0+50 })
	m, p1, p2 := rec.count("meter")-m0, rec.count("pump-1")-a0, rec.count("pump-2")-b0
	s := p.Stats()
	lift := s["lift"]
	t.Logf("while the lift was offline: meter %d, pump-1 %d, pump-2 %d polls; lift %d polls in all, errors %v", m, p1, p2, lift.Polls, lift.Errors)
	if p1 < m*3/5 || p2 < m*3/5 {
		t.Errorf("pumps on the shared line polled %d and %d times while the meter on its own line did %d", p1, p2, m)
	}
	attempts := lift.Errors[CauseTimeout] + lift.Errors[CauseFrame]
	// (+1: a probe in flight may have counted its timeout but not yet itself.)
	if maxAttempts := 2*min(lift.Polls, 3) + max(lift.Polls, 3) - 3 + 1; attempts == 0 || attempts > maxAttempts {
		t.Errorf("lift: %d failed attempts in %d polls, want 1..%d (one request per poll, no retry while offline)",
			attempts, lift.Polls, maxAttempts)
	}
	if lift.PointsRead != 0 || lift.Online {
		t.Errorf("slow lift: %+v", lift)
	}
	for _, id := range []string{"pump-1", "pump-2"} {
		st := s[id]
		if !st.Online || st.PointsRead == 0 {
			t.Errorf("%s: %+v", id, st)
		}
		// A late lift answer must never be taken for a pump's.
		if n := st.Errors[CauseFrame]; n != 0 {
			t.Errorf("%s: %d frame errors: late answers leaked across requests", id, n)
		}
	}
	// The lift recovers by itself once it answers in time.
	if err := b.ClearFault("lift"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "lift online", func() bool { return len(rec.stateLog("lift")) == 2 })
	if got := rec.stateLog("lift"); got[0] || !got[1] {
		t.Errorf("lift state reports = %v, want offline then online", got)
	}
	eventually(t, 5*time.Second, "lift readings", func() bool { return rec.count("lift") > 0 })
	compareWithModel(t, b, onBus("lift", "elevator", 3), rec.lastReadings("lift"))
}

// TestOfflineOnline: a device that becomes unreachable is reported offline
// after three failed polls, backed off, and reported online when it
// answers again.
func TestOfflineOnline(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump", Template: "pump-vfd"})
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxBackoff: 300 * time.Millisecond}, simDevice(t, b, "pump", "pump-vfd", "tcp", 20*time.Millisecond))
	var mu sync.Mutex
	var online []bool
	rec.setHook(func() { // a callback may read Stats
		o := p.Stats()["pump"].Online
		mu.Lock()
		online = append(online, o)
		mu.Unlock()
	})
	eventually(t, 5*time.Second, "first poll", func() bool { return rec.count("pump") > 0 })
	if err := b.SetFault("pump", sim.Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "offline report", func() bool { return len(rec.stateLog("pump")) == 1 })
	s := p.Stats()["pump"]
	if s.Online || s.ConsecutiveFailures < 3 || s.FailedPolls < 3 {
		t.Errorf("after the offline report: %+v", s)
	}
	if err := b.ClearFault("pump"); err != nil {
		t.Fatal(err)
	}
	n := rec.count("pump")
	eventually(t, 5*time.Second, "online report", func() bool { return len(rec.stateLog("pump")) == 2 })
	if got := rec.stateLog("pump"); got[0] || !got[1] {
		t.Errorf("state reports = %v, want offline then online", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(online) != 2 || online[0] || !online[1] {
		t.Errorf("Stats().Online seen from the callbacks = %v, want false then true", online)
	}
	eventually(t, 5*time.Second, "readings again", func() bool { return rec.count("pump") > n })
	if s := p.Stats()["pump"]; !s.Online || s.ConsecutiveFailures != 0 {
		t.Errorf("after recovery: %+v", s)
	}
}

// TestExceptions: exception answers are counted per code; the other
// requests of the device go on, unless the exception says the device
// behind a gateway does not answer. The poller's pump template has two points
// the device does not have: holding 14, right after the pump's map (merged
// into the main read, which the device then refuses as a whole), and
// holding 200 (a request of its own).
func TestExceptions(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump", Template: "pump-vfd"}, sim.DeviceConfig{ID: "meter", Template: "sdm630"},
		sim.DeviceConfig{ID: "lift", Template: "elevator"})
	pump := simDevice(t, b, "pump", "pump-vfd", "tcp", 20*time.Millisecond)
	tmpl := *pump.Template
	tmpl.Points = append(append([]config.Point(nil), tmpl.Points...),
		config.Point{Metric: "extra_a", Register: config.RegHolding, Address: 15, Type: "uint16", ByteOrder: "big", WordOrder: "big"},
		config.Point{Metric: "extra_b", Register: config.RegHolding, Address: 200, Type: "uint16", ByteOrder: "big", WordOrder: "big"})
	pump.Template = &tmpl
	if plan, _ := Plan(&tmpl, DefaultMaxGap); len(plan) != 2 {
		t.Fatalf("plan = %v, want holding 0+16 and holding 200+1", plan)
	}
	meter := simDevice(t, b, "meter", "sdm630", "tcp", 20*time.Millisecond)
	if err := b.SetFault("meter", sim.Fault{Exception: 4}); err != nil {
		t.Fatal(err)
	}
	lift := simDevice(t, b, "lift", "elevator", "tcp", 20*time.Millisecond)
	if err := b.SetFault("lift", sim.Fault{Exception: 11}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxGap: DefaultMaxGap}, pump, meter, lift)
	eventually(t, 5*time.Second, "pump polls", func() bool { return rec.count("pump") >= 3 })
	eventually(t, 5*time.Second, "meter and lift offline", func() bool {
		return len(rec.stateLog("meter")) == 1 && len(rec.stateLog("lift")) == 1
	})
	p.Stop() // statistics hold still

	s := p.Stats()
	ps := s["pump"]
	// 13 pump points + extra_a, one request each after the split, + extra_b.
	if ps.RequestsPerPoll != 15 || !ps.Online || ps.Errors["exception_2"] < 2*3 {
		t.Errorf("pump: %+v; want 15 requests per poll, online, illegal data address counted", ps)
	}
	got := map[string]bool{}
	for _, r := range rec.lastReadings("pump") {
		got[r.Metric] = true
	}
	if len(got) != 13 || got["extra_a"] || got["extra_b"] {
		t.Errorf("pump readings %v, want the 13 real points", got)
	}
	orig := simDevice(t, b, "pump", "pump-vfd", "tcp", 0)
	compareWithModel(t, b, orig, rec.lastReadings("pump"))

	ms := s["meter"]
	if ms.Errors["exception_4"] < 3 || ms.PointsRead != 0 || rec.count("meter") != 0 {
		t.Errorf("meter answering exception 4: %+v", ms)
	}
	if c := rec.causes["meter"]; c == nil || !strings.Contains(c.Error(), "server device failure") {
		t.Errorf("meter offline cause = %v", c)
	}
	// Exception 11 from a gateway means the device behind it is silent: the
	// poll ends at the first request, as for a timeout. (+1: Stop may end a
	// poll that counted its exception but not yet itself; seen on a slow,
	// emulated 32-bit ARM run.)
	ls := p.Stats()["lift"]
	if n := ls.Errors["exception_11"]; ls.Polls < 3 || n < ls.Polls || n > ls.Polls+1 || ls.PointsRead != 0 {
		t.Errorf("lift behind a gateway that gets no answer: %+v; want one request per poll", ls)
	}
}

// TestGarbageValues: NaN in the meter's float registers gives errors, not
// readings; the device still answers, so it stays online.
func TestGarbageValues(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "meter", Template: "sdm630"})
	if err := b.SetFault("meter", sim.Fault{Garbage: true}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxGap: DefaultMaxGap}, simDevice(t, b, "meter", "sdm630", "tcp", 20*time.Millisecond))
	eventually(t, 5*time.Second, "three polls", func() bool { return p.Stats()["meter"].Polls >= 3 })
	p.Stop() // statistics hold still
	s := p.Stats()["meter"]
	if n := s.Errors[CauseInvalidValue]; n < 17*3 || n%17 != 0 {
		t.Errorf("invalid values = %d, want 17 per poll", n)
	}
	if rec.count("meter") != 0 || s.PointsRead != 0 || !s.Online || s.FailedPolls != 0 {
		t.Errorf("garbage meter: %d sink calls, %+v", rec.count("meter"), s)
	}
	if !strings.Contains(s.LastError, "NaN") {
		t.Errorf("last error %q does not say NaN", s.LastError)
	}
	if err := b.ClearFault("meter"); err != nil {
		t.Fatal(err)
	}
	rec2 := newRecorder()
	startPoller(t, rec2, Options{MaxGap: DefaultMaxGap}, simDevice(t, b, "meter", "sdm630", "tcp", 20*time.Millisecond))
	eventually(t, 5*time.Second, "readings after the garbage", func() bool { return rec2.count("meter") > 0 })
}

// TestSingleConnection: a device that serves one connection at a time,
// polled as two devices (unit ids 1 and 255, which a Modbus TCP device
// answers alike). Marked SingleConnection they share one connection and
// every poll succeeds; unmarked, the second connection is refused.
func TestSingleConnection(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "pump", Template: "pump-vfd"})
	if err := b.SetFault("pump", sim.Fault{SingleConnection: true}); err != nil {
		t.Fatal(err)
	}
	two := func(single bool) []Device {
		a := simDevice(t, b, "pump", "pump-vfd", "tcp", 10*time.Millisecond)
		a.ID, a.SingleConnection = "unit-1", single
		c := a
		c.ID, c.UnitID = "unit-255", 255
		return []Device{a, c}
	}
	t.Run("shared", func(t *testing.T) {
		rec := newRecorder()
		p := startPoller(t, rec, Options{}, two(true)...)
		eventually(t, 5*time.Second, "20 polls each", func() bool { return rec.count("unit-1") >= 20 && rec.count("unit-255") >= 20 })
		p.Stop()
		for id, s := range p.Stats() {
			if len(s.Errors) != 0 || s.FailedPolls != 0 {
				t.Errorf("%s: %+v", id, s)
			}
		}
	})
	t.Run("separate connections are refused", func(t *testing.T) {
		rec := newRecorder()
		p := startPoller(t, rec, Options{}, two(false)...)
		eventually(t, 5*time.Second, "a refused connection", func() bool {
			s := p.Stats()
			return s["unit-1"].Errors[CauseConnection]+s["unit-255"].Errors[CauseConnection] > 0
		})
	})
}
