package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/promtext"
	"github.com/plantroom/plantroom/protocol"
)

// scrape reads the server's /metrics.
func scrape(t *testing.T, s *api.Server) *promtext.Metrics {
	t.Helper()
	rec := call(t, s.Handler(), "", http.MethodGet, "/metrics")
	m, err := promtext.Parse(rec.Body)
	if err != nil {
		t.Fatalf("cannot read /metrics: %v", err)
	}
	return m
}

// cacheLookups reads the report cache's lookup counts from /metrics.
func cacheLookups(t *testing.T, s *api.Server) map[string]int {
	t.Helper()
	m := scrape(t, s)
	if !m.Has("plantroom_api_report_cache_lookups_total") {
		t.Fatal("no plantroom_api_report_cache_lookups_total in /metrics")
	}
	out := map[string]int{}
	for _, res := range []string{"hit", "miss", "changed"} {
		out[res] = int(m.Int("plantroom_api_report_cache_lookups_total", "result", res))
	}
	return out
}

// TestReportCacheFollowsReadings: the monthly and HQ reports of a finished
// month are answered from the cache only while the readings they were
// computed from are unchanged, and the cached answer is the computed one.
// A late reading inside the month, and one after it where the counter walk
// looks for the reading that closes the month, make the month computed
// again; a running month is never kept.
func TestReportCacheFollowsReadings(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	b := testBundle(t)
	s := newServer(t, b, db, nil)
	const hq = "/api/v1/energy/monthly?month=2026-07"
	const project = "/api/v1/projects/p1/energy/monthly?month=2026-07"
	get := func(s *api.Server, target string) string {
		t.Helper()
		rec := call(t, s.Handler(), "acme-admin", http.MethodGet, target)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", target, rec.Code, rec.Body.String())
		}
		return rec.Body.String()
	}
	// computed is the answer of a server that has kept nothing.
	computed := func(target string) string {
		t.Helper()
		return get(newServer(t, b, db, nil), target)
	}
	// ask asks twice and wants the second answer from the cache, equal
	// to the first and to the computed one.
	ask := func(what, target string) string {
		t.Helper()
		first := get(s, target)
		before := cacheLookups(t, s)
		second := get(s, target)
		after := cacheLookups(t, s)
		if after["hit"] != before["hit"]+2 || after["miss"] != before["miss"] || after["changed"] != before["changed"] {
			t.Errorf("%s: asked again: lookups %v → %v, want two more hits (the month and the month a year before)", what, before, after)
		}
		if second != first {
			t.Errorf("%s: the cached answer differs from the first:\n%s\n%s", what, second, first)
		}
		if c := computed(target); c != first {
			t.Errorf("%s: the answer differs from the computed one:\n%s\n%s", what, first, c)
		}
		return first
	}
	hq0, p0 := ask("HQ", hq), ask("project", project)

	insert := func(dev string, ts time.Time, v float64) {
		t.Helper()
		var batch store.ReadingBatch
		batch.Add("acme", "p1", "p1-gw", 900000, &protocol.Reading{Device: dev, Metric: "energy_kwh", TS: ts.UnixMilli(), Value: v, Quality: protocol.QualityGood})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := db.InsertReadings(ctx, &batch); err != nil {
			t.Fatal(err)
		}
	}
	changed := func(what, target string, was string) string {
		t.Helper()
		before := cacheLookups(t, s)
		got := get(s, target)
		after := cacheLookups(t, s)
		if after["changed"] <= before["changed"] || after["hit"] > before["hit"]+1 {
			t.Errorf("%s: lookups %v → %v, want the month's entry found changed", what, before, after)
		}
		if c := computed(target); got != c {
			t.Errorf("%s: answer after the late reading differs from the computed one:\n%s\n%s", what, got, c)
		}
		return got
	}

	// A late reading in p1-light's 8-hour gap of 10 July (06:05 Shanghai):
	// the gap splits, an hour more is present.
	sh, _ := time.LoadLocation("Asia/Shanghai")
	insert("p1-light", time.Date(2026, 7, 10, 6, 5, 0, 0, sh), 100+0.2*1320+2)
	hq1 := changed("HQ after a late reading in July", hq, hq0)
	if hq1 == hq0 {
		t.Fatalf("HQ: the late reading changed nothing: %s", hq1)
	}
	var r energy.CompanyMonthly
	if err := json.Unmarshal([]byte(hq1), &r); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Projects {
		if l.Project == "p1" && l.Gaps != 2 {
			t.Errorf("HQ after the late reading: p1 gaps = %d, want 2", l.Gaps)
		}
	}
	if p1 := changed("project after a late reading in July", project, p0); p1 == p0 {
		t.Errorf("project: the late reading changed nothing")
	}
	ask("HQ, kept again", hq)

	// A reading after the month: the counter walk looked for p1-pump's
	// first reading after 1 August 16:00 UTC and found none, so one there
	// may decide July's last step.
	insert("p1-pump", time.Date(2026, 8, 3, 12, 0, 0, 0, sh), 4488-672.96+300)
	changed("HQ after a reading after July", hq, hq1)
	ask("HQ, kept once more", hq)

	// A running month is computed every time.
	sep := "/api/v1/energy/monthly?month=2026-09"
	before := cacheLookups(t, s)
	get(s, sep)
	get(s, sep)
	if after := cacheLookups(t, s); after["hit"] != before["hit"] || after["miss"] != before["miss"] || after["changed"] != before["changed"] {
		t.Errorf("running month: lookups %v → %v, want none", before, after)
	}
}

// TestReportCacheFollowsConfiguration: a kept computation answers only the
// configuration it was computed for; another tariff (or device) is
// computed anew through the same cache.
func TestReportCacheFollowsConfiguration(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	cache := energy.NewCache(db.Readings(), 8)
	m := energy.Month{Year: 2026, Month: 7}
	projects := func(b *config.Bundle) (energy.CompanyRef, []*energy.Project) {
		t.Helper()
		co := &b.Org.Companies[0]
		var ps []*energy.Project
		for i := range co.Projects {
			p, err := energy.NewProject(b, co, &co.Projects[i])
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, &p)
		}
		return energy.CompanyRef{ID: co.ID, Name: co.Name}, ps
	}
	report := func(b *config.Bundle, cached bool) string {
		t.Helper()
		ref, ps := projects(b)
		var rep *energy.CompanyMonthly
		var err error
		if cached {
			rep, err = cache.CompanyMonthlyReport(ctx, ref, ps, m, now)
		} else {
			rep, err = energy.CompanyMonthlyReport(ctx, db.Readings(), ref, ps, m, now)
		}
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(rep)
		return string(out)
	}
	b := testBundle(t)
	first := report(b, true)
	if again := report(b, true); again != first || cache.Stats().Hits != 2 {
		t.Fatalf("same configuration: stats %+v, same answer %v", cache.Stats(), again == first)
	}

	// Peak price 1.00 → 2.00 in the first version.
	dear := testBundle(t)
	dear.Tariffs = config.TariffFile{}
	if err := config.Decode([]byte(strings.Replace(testTariffs, "prices: {peak: 1.0,", "prices: {peak: 2.0,", 1)), &dear.Tariffs); err != nil {
		t.Fatal(err)
	}
	got := report(dear, true)
	if got == first {
		t.Fatalf("another tariff: the cached answer of the first came back")
	}
	if want := report(dear, false); got != want {
		t.Errorf("another tariff: cached %s\ncomputed %s", got, want)
	}

	// p2-pump's maximum power so low that every step is implausible.
	weak := testBundle(t)
	weak.Org.Companies[0].Projects[1].Gateways[0].Devices[0].MaxPowerKW = 0.001
	got = report(weak, true)
	if got == first {
		t.Fatalf("another device: the cached answer of the first came back")
	}
	if want := report(weak, false); got != want {
		t.Errorf("another device: cached %s\ncomputed %s", got, want)
	}
	// And the first configuration is still answered from the cache.
	hits := cache.Stats().Hits
	if again := report(b, true); again != first || cache.Stats().Hits != hits+2 {
		t.Errorf("first configuration again: stats %+v, same answer %v", cache.Stats(), again == first)
	}
}

// TestLastMonthWarmedAtStart: a started server computes last month's HQ
// report of every company in the background and keeps it, so the first
// request is answered from the cache.
func TestLastMonthWarmedAtStart(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	// Two companies, two computations each (the month with the month
	// before, the month a year before).
	kept := func() int {
		return int(scrape(t, s).Int("plantroom_api_report_cache_kept_total"))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for kept() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("last month not kept within 2 minutes of the start: %d computations kept", kept())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := cacheLookups(t, s)
	var r energy.CompanyMonthly
	decode(t, call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/energy/monthly?month=2026-08"), &r)
	if after := cacheLookups(t, s); after["hit"] != before["hit"]+2 || after["miss"] != before["miss"] {
		t.Errorf("first request of August after the start: lookups %v → %v, want two hits", before, after)
	}
	if r.Month != "2026-08" || len(r.Projects) != 2 {
		t.Errorf("August's report = %+v", r)
	}
}
