package backfill

import (
	"math"
	"testing"
	"time"
)

func TestCounterDelta(t *testing.T) {
	for _, tc := range []struct{ prev, cur, rollover, want float64 }{
		{10, 12.5, 0, 2.5},
		{10, 10, 0, 0},
		{5000, 0.4, 0, 0.4},   // meter replaced
		{99.5, 0.7, 100, 1.2}, // rollover: previous ≥ 0.9 R
		{50, 0.7, 100, 0.7},   // a drop far from R is a replacement
		{90, 1, 100, 11},      // exactly 0.9 R still rolls over
		{42949672.5, 0.5, 42949672.96, 0.96},
	} {
		if got := counterDelta(tc.prev, tc.cur, tc.rollover); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("counterDelta(%v, %v, R=%v) = %v, want %v", tc.prev, tc.cur, tc.rollover, got, tc.want)
		}
	}
}

func TestEnergySpreadsOverHours(t *testing.T) {
	day := time.Date(2026, 8, 1, 0, 0, 0, 0, shanghai)
	e := newEnergyTotals(shanghai, 100)
	e.add(day.Add(30*time.Minute), 95)              // 00:30
	e.add(day.Add(90*time.Minute), 99)              // 01:30: 4 kWh, half in each hour
	e.add(day.Add(150*time.Minute), 3)              // 02:30: rolled over, 4 kWh
	e.add(day.Add(5*time.Hour+30*time.Minute), 1.5) // 05:30: replaced, 1.5 kWh over 3 h
	d := &DeviceExpected{}
	e.fill(d, day, day.AddDate(0, 0, 1))
	want := map[int]float64{0: 2, 1: 4, 2: 2 + 0.25, 3: 0.5, 4: 0.5, 5: 0.25}
	for h := 0; h < 24; h++ {
		key := day.Add(time.Duration(h) * time.Hour).Format(time.RFC3339)
		if got := d.Hourly[key]; math.Abs(got-want[h]) > 1e-9 {
			t.Errorf("hour %02d (%s): %v kWh, want %v", h, key, got, want[h])
		}
	}
	if len(d.Hourly) != 24 || math.Abs(d.Daily["2026-08-01"]-9.5) > 1e-9 || math.Abs(d.TotalKWh-9.5) > 1e-9 {
		t.Errorf("%d hours, day %v, total %v; want 24, 9.5, 9.5", len(d.Hourly), d.Daily, d.TotalKWh)
	}
	if _, ok := d.Hourly["2026-08-01T00:00:00+08:00"]; !ok {
		t.Errorf("hour keys are not local RFC 3339: %v", d.Hourly)
	}
}

func TestParseFlags(t *testing.T) {
	at, err := ParseTime("2026-08-01", shanghai)
	if err != nil || !at.Equal(time.Date(2026, 7, 31, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseTime(date) = %v, %v", at, err)
	}
	if at, err := ParseTime("2026-08-01T08:00:00Z", shanghai); err != nil || at.Hour() != 8 || at.Location() != time.UTC {
		t.Errorf("ParseTime(RFC 3339) = %v, %v", at, err)
	}
	r, err := ParseReplacement("garden-meter-main@2026-09-15T10:00", shanghai)
	if err != nil || r.Device != "garden-meter-main" || r.At.In(shanghai).Hour() != 10 {
		t.Errorf("ParseReplacement = %+v, %v", r, err)
	}
	g, err := ParseGap("2026-09-10T08:00/2026-09-10T14:00", shanghai)
	if err != nil || g.Device != "" || g.To.Sub(g.From) != 6*time.Hour {
		t.Errorf("ParseGap(all) = %+v, %v", g, err)
	}
	g, err = ParseGap("garden-pump-1@2026-09-10/2026-09-11", shanghai)
	if err != nil || g.Device != "garden-pump-1" || g.To.Sub(g.From) != 24*time.Hour {
		t.Errorf("ParseGap(device) = %+v, %v", g, err)
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "08:00"} {
		if _, err := ParseTime(bad, shanghai); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
	if _, err := ParseReplacement("2026-09-15", shanghai); err == nil {
		t.Error("a replacement without a device parsed")
	}
	if _, err := ParseGap("2026-09-10", shanghai); err == nil {
		t.Error("a gap without an end parsed")
	}
}
