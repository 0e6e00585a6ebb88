package modbus

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// BenchmarkSharedLineWrites measures what remote-control writes cost the
// other devices on the same serial line (issue 16: "polling of other
// devices on the same line unaffected beyond the write's own duration").
// One RS-485 line behind a serial-to-Ethernet converter (rtuBus) carries a
// lighting panel (unit 1) and two SDM630 meters (units 2, 3), all polled
// every 100 ms over one link. The meters' poll jitter (|interval between
// two polls − 100 ms|) is measured in 1.5 s windows without writes and,
// alternating with them, windows in which the panel's circuit is switched
// every 150 ms (read, write, read back: the link's lock held for the three
// transactions); the write's own duration is measured with it. Reported:
// base_jitter_p99_ms / _p50_ms (no writes), jitter_p99_ms / _p50_ms (with
// writes), write_p99_ms and write_p50_ms. Wall-clock: run with
// -benchtime 1x (about 18 s).
func BenchmarkSharedLineWrites(b *testing.B) {
	const interval = 100 * time.Millisecond
	rtu := sim.TransportRTUOverTCP
	bld := startSim(b, sim.DeviceConfig{ID: "panel", Template: "lighting-panel", Transport: rtu, UnitID: 1},
		sim.DeviceConfig{ID: "meter-1", Template: "sdm630", Transport: rtu, UnitID: 2},
		sim.DeviceConfig{ID: "meter-2", Template: "sdm630", Transport: rtu, UnitID: 3})
	bus := startBus(b, map[byte]string{1: bld.Addr("panel"), 2: bld.Addr("meter-1"), 3: bld.Addr("meter-2")})
	tpl := shippedTemplates(b)
	line := TransportRTUOverTCP + "://" + bus.addr()
	devs := []Device{
		{ID: "panel", Template: tpl["lighting-panel"], Address: line, UnitID: 1, PollInterval: interval, Timeout: time.Second},
		{ID: "meter-1", Template: tpl["sdm630"], Address: line, UnitID: 2, PollInterval: interval, Timeout: time.Second},
		{ID: "meter-2", Template: tpl["sdm630"], Address: line, UnitID: 3, PollInterval: interval, Timeout: time.Second},
	}
	var mu sync.Mutex
	polls := map[string][]time.Time{} // completion time of each poll, per device
	rec := newRecorder()
	p, err := NewPoller(devs, Options{OnState: rec.onState, Log: testLogger(), Sink: func(rs []protocol.Reading) {
		mu.Lock()
		polls[rs[0].Device] = append(polls[rs[0].Device], time.Now())
		mu.Unlock()
		rec.sink(rs)
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	eventually(b, 10*time.Second, "first polls of the three devices", func() bool {
		return rec.count("panel") > 0 && rec.count("meter-1") > 0 && rec.count("meter-2") > 0
	})

	// phase polls the line for d, switching the panel's circuit every
	// 150 ms when write is set, and returns the meters' jitters and the
	// writes' durations.
	phase := func(d time.Duration, write bool) (jitter, writes []time.Duration) {
		mu.Lock()
		clear(polls)
		mu.Unlock()
		end := time.Now().Add(d)
		v := 0.0
		for time.Now().Before(end) {
			if write {
				v = 1 - v
				start := time.Now()
				if _, _, err := p.Write("panel", "circuit2_on", v); err != nil {
					b.Fatalf("write: %v", err)
				}
				writes = append(writes, time.Since(start))
			}
			time.Sleep(150 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range []string{"meter-1", "meter-2"} {
			ts := polls[id]
			if len(ts) < 3 { // a stalled line, not a slow machine
				b.Fatalf("%s polled %d times in %s, want about %d", id, len(ts), d, d/interval)
			}
			for i := 1; i < len(ts); i++ {
				j := ts[i].Sub(ts[i-1]) - interval
				jitter = append(jitter, max(j, -j))
			}
		}
		return jitter, writes
	}
	q := func(ds []time.Duration, f float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(f*float64(len(ds))))]) / float64(time.Millisecond)
	}
	for b.Loop() {
		// Windows with and without writes alternate, so that what else
		// the machine does falls on both alike.
		var base, with, writes []time.Duration
		for range 6 {
			j, _ := phase(1500*time.Millisecond, false)
			base = append(base, j...)
			j, w := phase(1500*time.Millisecond, true)
			with, writes = append(with, j...), append(writes, w...)
		}
		b.ReportMetric(q(base, 0.99), "base_jitter_p99_ms")
		b.ReportMetric(q(with, 0.99), "jitter_p99_ms")
		b.ReportMetric(q(base, 0.5), "base_jitter_p50_ms")
		b.ReportMetric(q(with, 0.5), "jitter_p50_ms")
		b.ReportMetric(q(writes, 0.99), "write_p99_ms")
		b.ReportMetric(q(writes, 0.5), "write_p50_ms")
	}
}
