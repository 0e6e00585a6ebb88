package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

type deviceJSON struct {
	ID           string     `json:"id"`
	State        string     `json:"state"`
	LastSeen     *time.Time `json:"last_seen"`
	GatewayState struct {
		Online *bool `json:"online"`
	} `json:"gateway_state"`
	Values map[string]struct {
		Value   float64   `json:"value"`
		Unit    string    `json:"unit"`
		At      time.Time `json:"at"`
		Quality uint8     `json:"quality"`
		State   string    `json:"state"`
	} `json:"values"`
}

// TestDevicesWithIngestCaches lists devices with the ingest's latest-value
// cache and presence, loaded from ClickHouse as an API-only process does.
func TestDevicesWithIngestCaches(t *testing.T) {
	db := openStore(t)
	b := testBundle(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().Truncate(time.Millisecond)
	var rb store.ReadingBatch
	add := func(project, gw, dev, metric string, at time.Time, v float64, q protocol.Quality) {
		rb.Add("acme", project, gw, 7, &protocol.Reading{Device: dev, Metric: metric, TS: at.UnixMilli(), Value: v, Quality: q})
	}
	add("p1", "p1-gw", "p1-pump", "power_kw", now.Add(-5*time.Second), 7.5, protocol.QualityGood)
	add("p1", "p1-gw", "p1-pump", "running", now.Add(-5*time.Second), 1, protocol.QualityGood)
	add("p1", "p1-gw", "p1-pump", "energy_kwh", now.Add(-5*time.Second), 1234.5, protocol.QualityUncertain)
	add("p1", "p1-gw", "p1-elev", "load_pct", now.Add(-2*time.Hour), 40, protocol.QualityGood)
	add("acme", "p2-gw", "p2-pump", "power_kw", now.Add(-3*time.Second), 3, protocol.QualityGood)
	rb.Project[len(rb.Project)-1] = "p2"
	if err := db.InsertReadings(ctx, &rb); err != nil {
		t.Fatal(err)
	}
	// p1's gateway is online, p2's went offline.
	if err := db.InsertEvents(ctx, []store.EventRow{
		{Company: "acme", Project: "p1", Gateway: "p1-gw", Kind: store.KindGatewayOnline, TS: now.Add(-time.Hour).UnixMilli(), Seq: 1, Arrived: now.UnixMilli()},
		{Company: "acme", Project: "p2", Gateway: "p2-gw", Kind: store.KindGatewayOffline, TS: now.Add(-time.Second).UnixMilli(), Seq: 2, Message: "last_will", Arrived: now.UnixMilli()},
	}); err != nil {
		t.Fatal(err)
	}
	latest := ingest.NewLatest()
	if err := latest.Load(ctx, db, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	presence := ingest.NewPresence(&b.Org, 3)
	if err := presence.Load(ctx, db, latest); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, b, db, func(d *api.Deps) {
		d.Latest, d.Presence, d.Now = latest, presence, time.Now
	})

	var list struct {
		Project string       `json:"project"`
		Devices []deviceJSON `json:"devices"`
	}
	decode(t, call(t, s.Handler(), "acme-tech1", http.MethodGet, "/api/v1/projects/p1/devices"), &list)
	byID := map[string]deviceJSON{}
	for _, d := range list.Devices {
		byID[d.ID] = d
	}
	if len(list.Devices) != 5 {
		t.Fatalf("p1 lists %d devices, want 5", len(list.Devices))
	}
	pump := byID["p1-pump"]
	if pump.State != api.StateOnline || pump.GatewayState.Online == nil || !*pump.GatewayState.Online {
		t.Errorf("pump state %q, gateway %v", pump.State, pump.GatewayState.Online)
	}
	pw := pump.Values["power_kw"]
	if pw.Value != 7.5 || pw.Unit != "kW" || !pw.At.Equal(now.Add(-5*time.Second)) {
		t.Errorf("pump power = %+v", pw)
	}
	if r := pump.Values["running"]; r.State != "running" {
		t.Errorf("pump running = %+v, want state running", r)
	}
	if e := pump.Values["energy_kwh"]; e.Value != 1234.5 || e.Quality != 1 || e.Unit != "kWh" {
		t.Errorf("pump energy = %+v", e)
	}
	if e := byID["p1-elev"]; e.State != api.StateStale || e.LastSeen == nil {
		t.Errorf("elevator silent for 2 h: state %q, last seen %v", e.State, e.LastSeen)
	}
	if l := byID["p1-light"]; l.State != api.StateStale || len(l.Values) != 0 {
		t.Errorf("light never heard of, gateway online: %+v", l)
	}

	var one deviceJSON
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/devices/p2-pump"), &one)
	if one.State != api.StateOffline || one.Values["power_kw"].Value != 3 {
		t.Errorf("p2 pump behind an offline gateway: %+v", one)
	}
}

// TestDevicesFromRollups lists devices without the ingest's caches: values
// come from the hourly roll-up.
func TestDevicesFromRollups(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, func(d *api.Deps) {
		d.Now = func() time.Time { return time.Date(2026, 8, 1, 2, 10, 0, 0, time.FixedZone("CST", 8*3600)) } // 15 min after the last reading
	})
	var one deviceJSON
	decode(t, call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/devices/p1-elev"), &one)
	// The last reading, 1 August 01:55 (index 4487): 0.2 + 0.5 × (4487 − 2808) = 839.7.
	if one.State != api.StateStale || one.Values["energy_kwh"].Value != 839.7 {
		t.Errorf("elevator = %+v", one)
	}
}

func TestSeries(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	var r struct {
		Unit   string `json:"unit"`
		Step   string `json:"step"`
		Points []struct {
			T     time.Time `json:"t"`
			Min   float64   `json:"min"`
			Max   float64   `json:"max"`
			First float64   `json:"first"`
			Last  float64   `json:"last"`
			N     uint64    `json:"n"`
		} `json:"points"`
	}
	// Lighting panel on 10 July (local), 6-hour buckets: the gap (02:05 to
	// 10:05) leaves 13 readings in the 00:00 bucket and 12 in the 06:00 one.
	decode(t, call(t, s.Handler(), "acme-pm1", http.MethodGet,
		"/api/v1/devices/p1-light/series?metric=energy_kwh&from=2026-07-10&to=2026-07-11&step=6h"), &r)
	if r.Unit != "kWh" || r.Step != "6h" || len(r.Points) != 4 {
		t.Fatalf("series = %+v", r)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	p0 := r.Points[0]
	// Index of 10 July 00:05 is 1308: 100 + 0.2 × 1308 = 361.6; 02:05 is 1320: 364.
	if !p0.T.Equal(time.Date(2026, 7, 10, 0, 0, 0, 0, sh)) || p0.N != 13 || p0.First != 361.6 || p0.Last != 364 || p0.Min != 361.6 || p0.Max != 364 {
		t.Errorf("00:00 bucket = %+v", p0)
	}
	// 06:00 bucket: 10:05 (index 1368: 100 + 264 + 4.0 = 368) … 11:55 (370.2).
	if p := r.Points[1]; !p.T.Equal(time.Date(2026, 7, 10, 6, 0, 0, 0, sh)) || p.N != 12 || p.First != 368 || p.Last != 370.2 {
		t.Errorf("06:00 bucket = %+v", p)
	}
	if p := r.Points[3]; !p.T.Equal(time.Date(2026, 7, 10, 18, 0, 0, 0, sh)) || p.N != 36 {
		t.Errorf("18:00 bucket = %+v", p)
	}
	for _, bad := range []string{
		"metric=nope", "", "metric=energy_kwh&from=yesterday", "metric=energy_kwh&step=2h",
		"metric=energy_kwh&from=2026-07-10&to=2026-07-09", "metric=energy_kwh&from=2024-01-01&to=2026-01-01",
		"metric=energy_kwh&from=2026-01-01&to=2026-07-01&step=1h",
	} {
		checkStatus(t, call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/devices/p1-light/series?"+bad), http.StatusBadRequest, bad)
	}
}
