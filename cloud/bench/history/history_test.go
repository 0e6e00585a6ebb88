// Package history measures what years of alarm and work-order history cost
// a bin/cloud process: start time, resident memory after start, and the
// p99 of GET /alarms and GET /workorders, for the binary under test and,
// in the same run on the same data, a baseline binary built from an
// earlier commit (scripts/bench.sh builds both). It has only a benchmark.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/internal/procstat"
)

// size reads a size from the environment or takes the figure.
func size(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return def
}

// BenchmarkCloudWithHistory stores ALARM_EVENTS historical alarm events
// (four per alarm: raise, repeat, acknowledgement, clear) and ORDERS
// closed work orders (six events each) before now, at a fixed rate (two
// years at the size, see span), in the database
// plantroom_bench_history (plantroom_bench_history_<events>_<orders>_<days>d
// for other sizes; kept between runs, generated again when its counts
// differ), then for each binary starts it on that
// database (broker, ingest and API on loopback) and reports
//
//	first-start-ms            the first start on the history (stopped with SIGTERM once it answers): for
//	                          a binary with snapshots of the held set, the one that reads the whole log
//	start-ms                  the restarts after it (the median of three): from exec until GET /alarms
//	                          and GET /workorders answer 200
//	rss-MiB                   VmRSS one second after that
//	alarms-p99-ms             GET /api/v1/alarms (the default: newest 500), 200 requests
//	workorders-p99-ms         GET /api/v1/workorders (newest 500), 200 requests
//	closed-p99-ms             GET /api/v1/workorders?state=closed&until=<a year ago>&limit=100, 50 requests
//	failed                    1 when the binary did not start (its log says why)
//
// Each p99 stops after a minute (with at least 10 requests) when the
// answers are slow (the baseline's take seconds each at 1 M events); the
// log says how many were made.
//
// PLANTROOM_BENCH_CLOUD is the binary under test (sub-benchmark "new"),
// PLANTROOM_BENCH_BASELINE_CLOUD the baseline ("baseline"), each run in its
// own sub-benchmark; PLANTROOM_BENCH_ALARM_EVENTS and
// PLANTROOM_BENCH_ORDERS scale the history down (default 1,000,000 and
// 200,000).
func BenchmarkCloudWithHistory(b *testing.B) {
	nEvents := size(b, "PLANTROOM_BENCH_ALARM_EVENTS", 1_000_000)
	nOrders := size(b, "PLANTROOM_BENCH_ORDERS", 200_000)
	bins := map[string]string{"new": os.Getenv("PLANTROOM_BENCH_CLOUD"), "baseline": os.Getenv("PLANTROOM_BENCH_BASELINE_CLOUD")}
	if bins["new"] == "" {
		b.Fatal("PLANTROOM_BENCH_CLOUD: the bin/cloud to measure is required")
	}
	ch := chtest.Addr(b)
	db := "plantroom_bench_history"
	if nEvents != 1_000_000 || nOrders != 200_000 {
		db = fmt.Sprintf("plantroom_bench_history_%d_%d_%dd", nEvents, nOrders, int(span(nEvents).Hours()/24))
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		b.Fatal(err)
	}
	generate(b, ch, db, root, nEvents, nOrders)
	for _, name := range []string{"baseline", "new"} {
		bin := bins[name]
		if bin == "" {
			continue
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				// The first start after the history was stored reads it
				// whole (no snapshot: the journals are emptied, as a run
				// before may have left one) and stops cleanly, writing
				// one; the one measured starts as a restart does.
				forgetSnapshots(b, ch, db)
				first, ok := measure(b, bin, ch, db, root, true)
				if !ok {
					continue
				}
				b.ReportMetric(float64(first.Milliseconds()), "first-start-ms")
				// Restarts: the median of three (one start on a machine
				// shared with other work varies by seconds).
				var starts []time.Duration
				for range 2 {
					if d, ok := measure(b, bin, ch, db, root, true); ok {
						starts = append(starts, d)
					}
				}
				if d, ok := measure(b, bin, ch, db, root, false); ok {
					starts = append(starts, d)
					slices.Sort(starts)
					b.Logf("restarts: %v", starts)
					b.ReportMetric(float64(starts[len(starts)/2].Milliseconds()), "start-ms")
				}
			}
		})
	}
}

// span is how far back a history of n alarm events reaches: two years at
// 1,000,000, at the same rate for other sizes (500,000 alarm events and,
// with the default ratio, 100,000 orders a year), so that two sizes are
// the same plant with a longer or shorter past: the same alarms and
// orders in the recent window, the same held set.
func span(n int) time.Duration {
	return time.Duration(float64(2*365*24*time.Hour) * float64(n) / 1_000_000)
}

// generate fills the database unless it already holds this history.
func generate(b *testing.B, ch chtest.Options, db, root string, nEvents, nOrders int) {
	ctx := context.Background()
	opts := store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: db}
	wantAlarmSeq, wantOrderSeq := uint64(nEvents/4*4), uint64(nEvents/4*4+nOrders*6)
	if s, err := store.Open(ctx, opts); err == nil {
		as, aerr := alarm.NewClickHouseLog(s.Conn()).MaxSeq(ctx)
		ws, werr := workorder.NewClickHouseLog(s.Conn()).MaxSeq(ctx)
		s.Close()
		// The clouds measured before may have added a few events (a
		// gateway that never connects goes offline after the start-up
		// grace): more than generated is the same history.
		if aerr == nil && werr == nil && as >= wantAlarmSeq && ws >= wantOrderSeq {
			b.Logf("reusing the history in %s (%d alarm events, %d closed orders)", db, nEvents, nOrders)
			return
		}
	}
	b.Logf("storing %d alarm events and %d closed work orders in %s (minutes)…", nEvents, nOrders, db)
	if err := store.DropDatabase(ctx, store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password}, db); err != nil {
		b.Fatal(err)
	}
	s, err := store.Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, append(alarm.Migrations(), workorder.Migrations()...)...); err != nil {
		b.Fatal(err)
	}
	bundle, err := config.LoadBundle(filepath.Join(root, "configs/org.yaml"), filepath.Join(root, "configs/tariffs.yaml"),
		filepath.Join(root, "configs/templates"), filepath.Join(root, "configs/rules.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var devs []config.DeviceInfo
	for _, d := range bundle.Org.Devices() {
		if d.Company.ID == "acme" {
			devs = append(devs, d)
		}
	}
	now := time.Now().UTC().Truncate(time.Hour)
	t0 := now.Add(-span(nEvents)) // at 1 M: two years, 25 monthly partitions
	alog, wlog := alarm.NewClickHouseLog(s.Conn()), workorder.NewClickHouseLog(s.Conn())
	const chunk = 50_000
	var seq uint64
	step := now.Sub(t0) / time.Duration(nEvents/4+1)
	var evs []alarm.Event
	for i := 0; i < nEvents/4; i++ {
		d := devs[i%len(devs)]
		at := t0.Add(time.Duration(i) * step)
		a := alarm.Alarm{ID: fmt.Sprintf("%s.pump-fault.%d", d.Device.ID, at.UnixMilli()), Company: d.Company.ID, Project: d.Project.ID,
			Gateway: d.Gateway.ID, Device: d.Device.ID, Category: d.Device.Kind, Rule: "pump-fault", RuleName: "fault",
			RuleKind: "threshold", Severity: "major", Metric: "fault_code", RaisedAt: at, Value: 3, ReadingTS: at}
		for n, kind := range []string{alarm.EventRaise, alarm.EventRepeat, alarm.EventAck, alarm.EventClear} {
			seq++
			ev := alarm.Event{N: uint32(n + 1), Seq: seq, Kind: kind, At: at.Add(time.Duration(n) * time.Minute), Value: 3, ReadingTS: at}
			a.N, a.Seq, a.State, a.Count = ev.N, seq, alarm.StateActive, n+1
			if kind == alarm.EventAck {
				a.Acked, a.AckedBy, a.AckedAt = true, "tech-garden-1", ev.At
			}
			if kind == alarm.EventClear {
				a.State, a.ClearedAt = alarm.StateCleared, ev.At
			}
			ev.Alarm = a
			evs = append(evs, ev)
		}
		if len(evs) >= chunk {
			if err := alog.ImportAlarmEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	if err := alog.ImportAlarmEvents(ctx, evs); err != nil {
		b.Fatal(err)
	}
	ostep := now.Sub(t0) / time.Duration(nOrders+1)
	var oevs []workorder.Event
	for i := 0; i < nOrders; i++ {
		d := devs[i%len(devs)]
		at := t0.Add(time.Duration(i) * ostep)
		w := workorder.WorkOrder{ID: fmt.Sprintf("wo-hist-%07d", i), Company: d.Company.ID, Project: d.Project.ID, Device: d.Device.ID,
			Category: d.Device.Kind, Source: workorder.SourceManual, Title: "历史工单 / past order", Severity: "minor", Priority: 3,
			CreatedBy: "pm-garden", OpenedAt: at, RaisedAt: at, SLADue: at.Add(4 * time.Hour), Assignee: "tech-garden-1"}
		from := ""
		for n, to := range []string{workorder.StateOpen, workorder.StateAssigned, workorder.StateAccepted, workorder.StateInProgress,
			workorder.StateResolved, workorder.StateClosed} {
			seq++
			ev := workorder.Event{OrderID: w.ID, N: uint32(n + 1), Seq: seq, Action: workorder.ActionTransition,
				At: at.Add(time.Duration(n) * time.Hour), Who: "tech-garden-1", From: from, To: to, Assignee: w.Assignee}
			w.State, w.N, w.Seq = to, ev.N, seq
			ev.Order = w
			oevs = append(oevs, ev)
			from = to
		}
		if len(oevs) >= chunk {
			if err := wlog.ImportOrderEvents(ctx, oevs); err != nil {
				b.Fatal(err)
			}
			oevs = oevs[:0]
		}
	}
	if err := wlog.ImportOrderEvents(ctx, oevs); err != nil {
		b.Fatal(err)
	}
}

// forgetSnapshots empties the journals of the alarm and work-order logs
// (their snapshots of the held set): the next start reads the whole log.
func forgetSnapshots(b *testing.B, ch chtest.Options, db string) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: db})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, append(alarm.Migrations(), workorder.Migrations()...)...); err != nil {
		b.Fatal(err)
	}
	for _, t := range []string{"alarm_events_journal", "workorder_events_journal"} {
		if err := s.Conn().Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			b.Fatal(err)
		}
	}
}

// measure starts one binary on the history, reports its figures but the
// start's and returns how long the start took; with first, it only starts
// it and stops it (SIGTERM) once it answers. ok is false when it did not
// start.
func measure(b *testing.B, bin string, ch chtest.Options, db, root string, first bool) (took time.Duration, ok bool) {
	addrs, err := nettest.PickAddrs(2)
	if err != nil {
		b.Fatal(err)
	}
	broker, api := addrs[0], addrs[1]
	dir := b.TempDir()
	cfg := filepath.Join(dir, "cloud.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `org: %[1]s/configs/org.yaml
tariffs: %[1]s/configs/tariffs.yaml
templates: %[1]s/configs/templates
rules: %[1]s/configs/rules.yaml
log: {level: warn}
metrics: {listen: "off"}
broker: {listen: %[2]q, store_path: %[3]q}
api: {listen: %[4]q}
photos: {dir: %[5]q}
clickhouse: {addr: %[6]q, user: %[7]q, password: %[8]q, database: %[9]s}
`, root, broker, filepath.Join(dir, "broker.db"), api, filepath.Join(dir, "photos"), ch.Addr, ch.User, ch.Password, db), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "cloud.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	client := &http.Client{Timeout: 2 * time.Minute}
	get := func(path string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+api+path, nil)
		req.Header.Set("Authorization", "Bearer demo-hq-admin")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var body map[string]json.RawMessage
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				return resp.StatusCode, err
			}
		}
		return resp.StatusCode, nil
	}
	ready := func() bool {
		a, errA := get("/api/v1/alarms?limit=1")
		w, errW := get("/api/v1/workorders?limit=1")
		return errA == nil && errW == nil && a == http.StatusOK && w == http.StatusOK
	}
	deadline := time.Now().Add(10 * time.Minute)
	for !ready() {
		select {
		case err := <-exited:
			exited <- err
			data, _ := os.ReadFile(logPath)
			b.Logf("%s did not start (%v): %s", bin, err, lastLines(string(data), 5))
			b.ReportMetric(1, "failed")
			return 0, false
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not ready after 10 minutes", bin)
		}
	}
	took = time.Since(start)
	if first {
		b.Logf("start (stopped once it answered): %s", took)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			exited <- err
		case <-time.After(time.Minute):
			b.Fatalf("%s did not stop within a minute of SIGTERM", bin)
		}
		return took, true
	}
	time.Sleep(time.Second)
	rss := vmRSS(cmd.Process.Pid)
	// p99 asks path up to n times, or for a minute when the answers are
	// slow (at least 10 times), and returns the nearest-rank 99th
	// percentile of what it measured.
	p99 := func(path string, n int) float64 {
		var ds []time.Duration
		until := time.Now().Add(time.Minute)
		for len(ds) < n && (len(ds) < 10 || time.Now().Before(until)) {
			t := time.Now()
			code, err := get(path)
			if err != nil || code != http.StatusOK {
				b.Fatalf("GET %s: %d %v", path, code, err)
			}
			ds = append(ds, time.Since(t))
		}
		slices.Sort(ds)
		b.Logf("GET %s: %d requests", path, len(ds))
		return float64(ds[(len(ds)*99+99)/100-1].Microseconds()) / 1000
	}
	yearAgo := url.QueryEscape(time.Now().UTC().AddDate(-1, 0, 0).Format(time.RFC3339))
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	b.ReportMetric(p99("/api/v1/alarms", 200), "alarms-p99-ms")
	b.ReportMetric(p99("/api/v1/workorders", 200), "workorders-p99-ms")
	b.ReportMetric(p99("/api/v1/workorders?state=closed&limit=100&until="+yearAgo, 50), "closed-p99-ms")
	b.ReportMetric(0, "failed")
	return took, true
}

// vmRSS is a process's resident set in bytes (0 if unknown).
func vmRSS(pid int) int64 {
	rss, _ := procstat.RSS(pid)
	return rss
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
