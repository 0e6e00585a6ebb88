package modbus

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// TestOutOfRangePointsMarkedBad polls a simulated SDM630 over Modbus TCP on
// loopback with a template whose voltage_l1_v range (max 100 V) the meter's
// ~230 V falls outside and whose power_total_w range (min 1e9 W) the meter's
// power does too: those two readings are kept with bad quality and their
// real value, every other point is good, and each bad reading is counted
// as out_of_range, in the statistics and in Prometheus.
func TestOutOfRangePointsMarkedBad(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "meter", Template: "sdm630"}) // meters have no random faults
	dev := simDevice(t, b, "meter", "sdm630", "tcp", 20*time.Millisecond)
	tpl := *dev.Template
	tpl.Points = append(tpl.Points[:0:0], tpl.Points...)
	maxV, minW := 100.0, 1e9
	bad := map[string]bool{"voltage_l1_v": true, "power_total_w": true}
	for i := range tpl.Points {
		switch tpl.Points[i].Metric {
		case "voltage_l1_v":
			tpl.Points[i].Max = &maxV
		case "power_total_w":
			tpl.Points[i].Min = &minW
		}
	}
	dev.Template = &tpl
	want, err := b.Values("meter")
	if err != nil {
		t.Fatal(err)
	}
	if want["voltage_l1_v"] <= maxV || want["power_total_w"] >= minW {
		t.Fatalf("simulated meter %v: voltage_l1_v must exceed %v and power_total_w stay below %v for this test", want, maxV, minW)
	}

	reg := prometheus.NewRegistry()
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxGap: DefaultMaxGap, Registerer: reg}, dev)
	eventually(t, 15*time.Second, "three polls", func() bool { return rec.count("meter") >= 3 })
	p.Stop() // statistics hold still

	rs := rec.lastReadings("meter")
	if len(rs) != len(tpl.Points) {
		t.Fatalf("%d readings, want one per point (%d)", len(rs), len(tpl.Points))
	}
	for _, r := range rs {
		wantQ := protocol.QualityGood
		if bad[r.Metric] {
			wantQ = protocol.QualityBad
		}
		if r.Quality != wantQ {
			t.Errorf("%s = %v: quality %v, want %v", r.Metric, r.Value, r.Quality, wantQ)
		}
	}
	for _, r := range rs {
		if bad[r.Metric] && r.Value != float64(float32(want[r.Metric])) {
			t.Errorf("%s = %v, want the meter's value %v kept", r.Metric, r.Value, float32(want[r.Metric]))
		}
	}
	// Two per poll handed to the sink; Stop may end one more poll after
	// it counted its bad points but before it handed them over.
	s := p.Stats()["meter"]
	n, polls := s.Errors[CauseOutOfRange], uint64(rec.count("meter"))
	if n < 2*polls || n > 2*polls+2 {
		t.Errorf("out_of_range counted %d times in %d polls, want 2 per poll", n, polls)
	}
	if m := testutil.ToFloat64(p.m.readErrors.WithLabelValues("meter", CauseOutOfRange)); m != float64(n) {
		t.Errorf("plantroom_edge_modbus_read_errors_total{cause=out_of_range} = %v, want %d", m, n)
	}
	if !s.Online || s.FailedPolls != 0 {
		t.Errorf("a meter answering out-of-range values is still online and polled fine: %+v", s)
	}
}
