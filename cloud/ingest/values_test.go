package ingest

import (
	"strconv"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// withTemplates gives every device of the test org one template declaring
// the two metrics makeBatch sends, with valid ranges.
func withTemplates(cfg *Config) {
	hi, lo, pmax := 1e9, 0.0, 1e5
	t := &config.Template{ID: "test-meter", Kind: "meter", Points: []config.Point{
		{Metric: "energy_import_kwh", Counter: true, Max: &hi},
		{Metric: "power_w", Min: &lo, Max: &pmax},
	}}
	for ci := range cfg.Org.Companies {
		for pi := range cfg.Org.Companies[ci].Projects {
			for gi := range cfg.Org.Companies[ci].Projects[pi].Gateways {
				g := &cfg.Org.Companies[ci].Projects[pi].Gateways[gi]
				for di := range g.Devices {
					g.Devices[di].Template = t.ID
				}
			}
		}
	}
	cfg.Templates = config.Templates{t.ID: t}
	cfg.Latest = NewLatest()
	cfg.Latest.Declare(cfg.Org, cfg.Templates)
}

// A finite absurd value is kept with bad quality (counted, out of the
// latest values, its cause in bad_cause); a reading the gateway sent bad
// is kept with cause "gateway"; undeclared metrics and readings past max_age are
// rejected with their own causes; the rest of the batch is stored.
func TestValuesCheckedAgainstTemplates(t *testing.T) {
	e := newEnv(t, envOptions{ingest: withTemplates})
	gw := e.gateway(garden, "gw-garden-1", nil)
	now := time.Now()
	b := makeBatch("gw-garden-1", 1, now.Add(-time.Hour), gardenDevices, 5) // 20 good readings
	ts := now.Add(-time.Minute).UnixMilli()
	b.Readings = append(b.Readings,
		protocol.Reading{Device: "garden-meter-main", Metric: "energy_import_kwh", TS: ts, Value: 1.7e308},
		protocol.Reading{Device: "garden-pump-1", Metric: "energy_import_kwh", TS: ts, Value: -5},
		protocol.Reading{Device: "garden-pump-1", Metric: "power_w", TS: ts, Value: 2e5},
		protocol.Reading{Device: "garden-pump-1", Metric: "power_w", TS: now.Add(-401 * 24 * time.Hour).UnixMilli(), Value: 1},
		protocol.Reading{Device: "garden-meter-main", Metric: "power_w", TS: ts, Value: 50, Quality: protocol.QualityBad},
	)
	for i := 0; i < 1000; i++ {
		b.Readings = append(b.Readings, protocol.Reading{Device: "garden-pump-1", Metric: "invented_" + strconv.Itoa(i), TS: ts, Value: 1})
	}
	publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, b))
	e.waitStored(60*time.Second, 24)

	if n := e.count("SELECT count() FROM readings FINAL WHERE quality = 2"); n != 4 {
		t.Errorf("%d readings stored with bad quality, want 4", n)
	}
	for cause, want := range map[string]uint64{CauseOutOfRange: 3, CauseGatewayBad: 1, "": 20} {
		if n := e.count("SELECT count() FROM readings FINAL WHERE bad_cause = ? AND quality = ?", cause, map[bool]uint8{true: 0, false: 2}[cause == ""]); n != want {
			t.Errorf("%d readings with bad_cause %q, want %d", n, cause, want)
		}
	}
	if got := e.metric(e.ingest.metrics.badReadings.WithLabelValues(CauseGatewayBad)); got != 1 {
		t.Errorf("readings bad{gateway} = %v, want 1", got)
	}
	if n := e.count("SELECT count() FROM readings FINAL WHERE value > 1e300 AND quality < 2"); n != 0 {
		t.Errorf("the absurd value is stored as good")
	}
	if n := e.count("SELECT count() FROM (SELECT device, metric, hour_ms, maxMerge(max_v) AS hi, minMerge(min_v) AS lo FROM readings_hourly GROUP BY device, metric, hour_ms) WHERE hi > 1e300 OR lo < 0"); n != 0 {
		t.Errorf("the absurd value reached the hourly roll-up")
	}
	if got := e.metric(e.ingest.metrics.badReadings.WithLabelValues(CauseOutOfRange)); got != 3 {
		t.Errorf("readings bad{out_of_range} = %v, want 3", got)
	}
	if got := e.rejectedReadings(CauseUnknownMetric); got != 1000 {
		t.Errorf("readings rejected{unknown_metric} = %v, want 1000", got)
	}
	if got := e.rejectedReadings(CauseTooOld); got != 1 {
		t.Errorf("readings rejected{too_old} = %v, want 1", got)
	}
	if n := e.count("SELECT count() FROM readings WHERE metric LIKE 'invented_%'"); n != 0 {
		t.Errorf("%d undeclared metrics stored", n)
	}
	waitFor(t, 5*time.Second, "the latest values", func() bool { return len(e.ingest.latest.Get("garden-pump-1")) == 2 })
	for _, d := range gardenDevices {
		for metric, v := range e.ingest.latest.Get(d) {
			if v.Quality == protocol.QualityBad || v.Value > 1e6 || v.Value < 0 {
				t.Errorf("latest %s/%s = %+v: a bad reading", d, metric, v)
			}
		}
		if n := len(e.ingest.latest.Get(d)); n != 2 {
			t.Errorf("latest of %s holds %d metrics, want the 2 declared", d, n)
		}
	}
}
