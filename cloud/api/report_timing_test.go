package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
)

// Benchmarks of the energy reports on the real ClickHouse, with a month
// (July 2026, Asia/Shanghai) of 10-second counter readings:
//
//	BenchmarkMonthlyReport: project "big", 200 devices (53.6 M readings)
//	BenchmarkCompanyReport: 50 projects of 4 devices each (53.6 M readings)
//
// The dataset is generated inside ClickHouse (INSERT … SELECT FROM
// numbers()) into the database plantroom_bench, once (an interrupted
// generation resumes day by day): later runs reuse it
// when its bench_meta row matches benchVersion (set PLANTROOM_BENCH_DB to
// use another database). Three devices of "big" have their meter replaced
// mid-month, so the reports also fetch raw readings for those hours.
//
// Run: go test -run '^$' -bench . -benchtime 10x ./cloud/api/
// Targets on the development machine: ≤ 300 ms per monthly report, ≤ 1 s
// per HQ report.

const (
	benchVersion = "v2: bench/big 200 devices, benchhq 50×4 devices, 10 s, 2026-07"
	benchDevices = 200
	benchHQ      = 50
	benchHQDevs  = 4
	benchStep    = 10 // seconds between readings
)

var benchNow = time.Date(2026, 8, 15, 12, 0, 0, 0, time.UTC)

// benchBundle is the benchmark organisation: company bench with project
// big, company benchhq with projects hq00 … hq49, on the shipped templates
// and tariffs.
func benchBundle(tb testing.TB) *config.Bundle {
	tb.Helper()
	b := &config.Bundle{}
	if err := config.LoadFile("../../configs/tariffs.yaml", &b.Tariffs); err != nil {
		tb.Fatal(err)
	}
	ts, err := config.LoadTemplates("../../configs/templates")
	if err != nil {
		tb.Fatal(err)
	}
	b.Templates = ts
	sh, _ := time.LoadLocation("Asia/Shanghai")
	kinds := []struct{ kind, template string }{{"pump", "pump-vfd"}, {"elevator", "elevator"}, {"lighting", "lighting-panel"}, {"pump", "pump-vfd"}}
	project := func(id string, devices int) config.Project {
		p := config.Project{ID: id, Name: "项目 " + id, TimeZone: "Asia/Shanghai", Location: sh, FloorAreaM2: 50000, Tariff: "sh-general",
			Buildings: []config.Building{{ID: id + "-b", Name: "主楼", FloorAreaM2: 50000}}}
		g := config.Gateway{ID: id + "-gw", Building: id + "-b"}
		for d := 0; d < devices; d++ {
			k := kinds[d%len(kinds)]
			g.Devices = append(g.Devices, config.Device{ID: fmt.Sprintf("%s-d%03d", id, d), Name: fmt.Sprintf("设备 %d", d),
				Kind: k.kind, Template: k.template, Building: id + "-b", PollInterval: config.D(benchStep * time.Second)})
		}
		p.Gateways = []config.Gateway{g}
		return p
	}
	big := config.Company{ID: "bench", Name: "基准物业", Projects: []config.Project{project("big", benchDevices)}}
	hq := config.Company{ID: "benchhq", Name: "基准集团"}
	for i := 0; i < benchHQ; i++ {
		hq.Projects = append(hq.Projects, project(fmt.Sprintf("hq%02d", i), benchHQDevs))
	}
	b.Org.Companies = []config.Company{big, hq}
	b.Org.Staff = []config.Staff{
		{ID: "bench-admin", Name: "Bench", Company: "bench", Role: config.RoleHQAdmin, TokenHash: api.HashToken(token("bench-admin"))},
		{ID: "benchhq-admin", Name: "Bench HQ", Company: "benchhq", Role: config.RoleHQAdmin, TokenHash: api.HashToken(token("benchhq-admin"))},
	}
	return b
}

// benchStore opens the benchmark database, generating the data if absent.
func benchStore(b *testing.B) *store.DB {
	b.Helper()
	name := os.Getenv("PLANTROOM_BENCH_DB")
	if name == "" {
		name = "plantroom_bench"
	}
	o := chtest.Addr(b)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name, ReadTimeout: 30 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	began := time.Now()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if d := time.Since(began); d > time.Second {
		b.Logf("migrated %s in %s", name, d.Round(time.Millisecond))
	}
	conn := db.Conn()
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS `"+name+"`.bench_meta (version String) ENGINE = TinyLog"); err != nil {
		b.Fatal(err)
	}
	var n, other uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(version = ?), countIf(version != ?) FROM `"+name+"`.bench_meta", benchVersion, benchVersion).Scan(&n, &other); err != nil {
		b.Fatal(err)
	}
	if n > 0 {
		return db
	}
	if other > 0 {
		// Another version of the dataset: start again.
		b.Logf("replacing an older benchmark dataset in %s", name)
		for _, t := range []string{store.TableReadings, store.TableHourly, "bench_meta"} {
			if err := conn.Exec(ctx, "TRUNCATE TABLE `"+name+"`."+t); err != nil {
				b.Fatal(err)
			}
		}
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	// From 30 June 23:00 to 1 August 23:00 local: July has readings on
	// both sides of its edges.
	start := time.Date(2026, 6, 30, 23, 0, 0, 0, sh).UnixMilli()
	const perDay = 86400 / benchStep
	// Reading index of 15 July 10:00 local (347 h after the start), when
	// devices with k % 67 == 5 get a new meter.
	const replaced = 347 * 3600 / benchStep
	// Generation resumes where an interrupted one stopped: a day of a set
	// holding all its rows is kept, any other is inserted (again: a row
	// inserted twice is a duplicate, which the readings table collapses
	// and every report ignores).
	have := map[[2]string]bool{}
	rows, err := conn.Query(ctx, "SELECT company, toString(intDiv(ts_ms - ?, ?)) AS d, count() FROM `"+name+"`.readings GROUP BY company, d",
		start, int64(perDay)*benchStep*1000)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var company, day string
		var c uint64
		if err := rows.Scan(&company, &day, &c); err != nil {
			b.Fatal(err)
		}
		have[[2]string{company, day}] = c >= 200*perDay
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	rows.Close()
	b.Logf("generating the benchmark dataset in %s (once; takes minutes)", name)
	for _, set := range []struct{ company, project, device string }{
		{"benchhq", "concat('hq', substring(toString(100 + intDiv(k, 4)), 2))", "k % 4"}, // 50 projects × 4
		{"bench", "'big'", "k"}, // 200 devices of one project
	} {
		for d := 0; d < 32; d++ {
			if have[[2]string{set.company, fmt.Sprint(d)}] {
				continue
			}
			began := time.Now()
			// Device k draws (3 + k mod 20) kW: (3 + k%20)/360 kWh per 10 s.
			q := fmt.Sprintf("INSERT INTO `%s`.readings (company, project, gateway, device, metric, ts_ms, value, quality, seq)\n"+
				"SELECT '%s', p, concat(p, '-gw'), concat(p, '-d', substring(toString(1000 + dk), 2)), 'energy_kwh', ts, v, 0, toUInt64(i)\n"+
				"FROM (SELECT number %% 200 AS k, intDiv(number, 200) + %d AS i, %s AS p, %s AS dk, %d + i * %d AS ts,\n"+
				"  if(i >= %d AND k %% 67 = 5, (i - %d) * (3 + k %% 20) / 360, 1000 * k + i * (3 + k %% 20) / 360) AS v\n"+
				"  FROM numbers(%d))",
				name, set.company, d*perDay, set.project, set.device, start, benchStep*1000, replaced, replaced, 200*perDay)
			if err := conn.Exec(ctx, q); err != nil {
				b.Fatalf("generate day %d: %v\n%s", d, err, q)
			}
			b.Logf("day %d of %s (200 devices) in %s", d, set.company, time.Since(began).Round(time.Millisecond))
		}
	}
	if err := conn.Exec(ctx, "INSERT INTO `"+name+"`.bench_meta (version) SELECT ?", benchVersion); err != nil {
		b.Fatal(err)
	}
	return db
}

func BenchmarkMonthlyReport(b *testing.B) {
	benchReports(b, "bench-admin", "/api/v1/projects/big/energy/monthly?month=2026-07", "company = 'bench'")
}

func BenchmarkCompanyReport(b *testing.B) {
	benchReports(b, "benchhq-admin", "/api/v1/energy/monthly?month=2026-07", "company = 'benchhq'")
}

// benchReports times a report in two servers over the same database,
// alternating call by call: one as the cloud runs (the roll-up's version
// keys the step summaries), one whose repository also reads the exact
// reading count n, as before readings migration 7 ("old-"); both compute
// every report (api.report_cache_entries -1). Besides the warm times, the
// first report of each new server (cold-ms, old-cold-ms), the bare roll-up
// scan (baseline-ms/op), and the report of a server that keeps finished
// months, as the cloud does, asked again (kept-ms/op: a look at the
// roll-up's version of what the month was computed from; its answer is
// checked to be the computed one).
func benchReports(b *testing.B, staff, target, where string) {
	s, old, kept, cold := newBenchServer(b)
	computed := call(b, s.Handler(), staff, http.MethodGet, target).Body.String()
	if first := call(b, kept.Handler(), staff, http.MethodGet, target).Body.String(); first != computed {
		b.Fatalf("a server that keeps finished months answered otherwise:\n%s\n%s", first, computed)
	}
	var now, before, again time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		began := time.Now()
		if rec := call(b, kept.Handler(), staff, http.MethodGet, target); rec.Code != http.StatusOK || rec.Body.String() != computed {
			b.Fatalf("kept report: status %d, same as computed: %v", rec.Code, rec.Body.String() == computed)
		}
		again += time.Since(began)
		for j, srv := range []*api.Server{s, old} {
			if i%2 == 1 {
				j, srv = 1-j, []*api.Server{s, old}[1-j]
			}
			began := time.Now()
			rec := call(b, srv.Handler(), staff, http.MethodGet, target)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			if j == 0 {
				now += time.Since(began)
			} else {
				before += time.Since(began)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(now.Milliseconds())/float64(b.N), "ms/op")
	b.ReportMetric(float64(before.Milliseconds())/float64(b.N), "old-ms/op")
	b.ReportMetric(float64(again.Microseconds())/1000/float64(b.N), "kept-ms/op")
	b.ReportMetric(rollupScan(b, where), "baseline-ms/op")
	if strings.Contains(target, "/projects/") {
		b.ReportMetric(cold.monthly, "cold-ms")
		b.ReportMetric(cold.oldMonthly, "old-cold-ms")
	} else {
		b.ReportMetric(cold.company, "cold-ms")
		b.ReportMetric(cold.oldCompany, "old-cold-ms")
	}
}

// exactCountDB gives the API the readings repository that also reads the
// roll-up's exact reading count (as before readings migration 7).
type exactCountDB struct{ *store.DB }

func (d exactCountDB) Readings() *store.Readings { return d.DB.ReadingsWithExactCounts() }

// rollupScan is the baseline for a report: the bare read of the month's
// hourly roll-up rows it covers (first and last counter value of every
// device-hour), with no energy computation, averaged over b.N runs. The
// report's ratio to it is the cost of everything the report adds.
func rollupScan(b *testing.B, where string) float64 {
	b.Helper()
	name := os.Getenv("PLANTROOM_BENCH_DB")
	if name == "" {
		name = "plantroom_bench"
	}
	o := chtest.Addr(b)
	db, err := store.Open(context.Background(), store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	from, to := time.Date(2026, 7, 1, 0, 0, 0, 0, sh).UnixMilli(), time.Date(2026, 8, 1, 0, 0, 0, 0, sh).UnixMilli()
	q := "SELECT device, hour_ms, argMinMerge(first_v), minMerge(first_ts), argMaxMerge(last_v), maxMerge(last_ts), minMerge(min_v), maxMerge(max_v) " +
		"FROM `" + name + "`.readings_hourly WHERE " + where + " AND metric = 'energy_kwh' AND hour_ms >= ? AND hour_ms < ? " +
		"GROUP BY company, project, device, metric, hour_ms"
	began := time.Now()
	for i := 0; i < b.N; i++ {
		rows, err := db.Conn().Query(context.Background(), q, from, to)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		if n == 0 {
			b.Fatal("baseline scan read no roll-up rows")
		}
	}
	return float64(time.Since(began).Milliseconds()) / float64(b.N)
}

// coldReports are the times of the first report of each kind in a new
// server (ms): nothing in its memory, the step summaries read from the
// table counter_steps, or, the very first time, worked out from the raw
// readings.
type coldReports struct{ monthly, company, oldMonthly, oldCompany float64 }

// newBenchServer returns a server as the cloud runs but keeping no
// finished month, one whose repository reads the exact reading counts
// (exactCountDB), with the times of their first reports, and one that
// keeps finished months as the cloud does.
func newBenchServer(b *testing.B) (*api.Server, *api.Server, *api.Server, coldReports) {
	db := benchStore(b)
	// The request timeout is raised so that a slow report is measured
	// rather than cut off (the default is 30 s).
	server := func(db api.Database, keep int) *api.Server {
		s, err := api.New(api.Config{Listen: "127.0.0.1:0", RequestTimeout: config.D(10 * time.Minute), WriteTimeout: config.D(11 * time.Minute),
			ReportCacheEntries: keep}, api.Deps{
			Bundle: benchBundle(b), DB: db, Logger: testLogger(b), Now: func() time.Time { return benchNow },
		})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	// Both compute every report (no finished month kept); kept keeps them
	// as the cloud does.
	s, old, kept := server(db, -1), server(exactCountDB{db}, -1), server(db, 0)
	// A warm-up call of each report, checked: device k draws (3 + k mod 20)
	// kW, so 200 devices draw 10 × (3 + … + 22) = 2500 kW: 2500 × 744 h =
	// 1,860,000 kWh in July; the three new meters read 0 at the instant of
	// the change, which drops one 10-second step of 8, 15 and 22 kW:
	// 45/360 = 0.125 kWh. Both sets of 200 devices give 1,859,999.875 kWh.
	//
	// The very first report over the dataset works the step summaries out
	// from the raw readings and may outlast the API's request timeout; each
	// attempt stores the weeks it finished, so attempts are repeated (and
	// their total time logged) until one answers.
	first := func(s *api.Server, staff, target string, v any) float64 {
		began := time.Now()
		for attempt := 1; ; attempt++ {
			t0 := time.Now()
			rec := call(b, s.Handler(), staff, http.MethodGet, target)
			if rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), `"timeout"`) && attempt < 30 {
				b.Logf("%s: attempt %d ran out of time after %s; again", target, attempt, time.Since(t0).Round(time.Millisecond))
				continue
			}
			decode(b, rec, v)
			if attempt > 1 {
				b.Logf("%s: answered at attempt %d, %s in all", target, attempt, time.Since(began).Round(time.Millisecond))
			}
			return float64(time.Since(t0).Microseconds()) / 1000
		}
	}
	var cold coldReports
	var m, om energy.Monthly
	var c, oc energy.CompanyMonthly
	cold.monthly = first(s, "bench-admin", "/api/v1/projects/big/energy/monthly?month=2026-07", &m)
	cold.oldMonthly = first(old, "bench-admin", "/api/v1/projects/big/energy/monthly?month=2026-07", &om)
	cold.company = first(s, "benchhq-admin", "/api/v1/energy/monthly?month=2026-07", &c)
	cold.oldCompany = first(old, "benchhq-admin", "/api/v1/energy/monthly?month=2026-07", &oc)
	b.Logf("first reports of a new server: monthly %.0f ms (reading n: %.0f ms), HQ %.0f ms (reading n: %.0f ms)", cold.monthly, cold.oldMonthly, cold.company, cold.oldCompany)
	for _, r := range []struct {
		m energy.Monthly
		c energy.CompanyMonthly
	}{{m, c}, {om, oc}} {
		if r.m.KWh != 1859999.875 || r.c.KWh != 1859999.875 || len(r.c.Projects) != benchHQ || len(r.m.CounterEvents) != 3 {
			b.Fatalf("benchmark data: project %v kWh (%d counter events), company %v kWh over %d projects", r.m.KWh, len(r.m.CounterEvents), r.c.KWh, len(r.c.Projects))
		}
	}
	return s, old, kept, cold
}
