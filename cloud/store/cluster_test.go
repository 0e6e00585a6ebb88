//go:build chcluster

package store

// The cluster path for real: two ClickHouse 18.16 servers, one shard each,
// with ZooKeeper, started and stopped by scripts/chcluster.sh test (which
// sets PLANTROOM_CH_CLUSTER and the chcluster build tag; .ci/run runs it).
// The store creates its Replicated tables behind Distributed ones ON
// CLUSTER; readings written through one server, as the ingest writes them,
// are read back through the other, as the reports read them, and must give
// the same figures as the single server.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/protocol"
)

const clusterName = "plantroom"

func clusterNodes(t *testing.T) []string {
	t.Helper()
	nodes := strings.Split(os.Getenv("PLANTROOM_CH_CLUSTER"), ",")
	if len(nodes) != 2 || nodes[0] == "" {
		t.Fatalf("PLANTROOM_CH_CLUSTER=%q: want host:port,host:port of the two shards (run scripts/chcluster.sh test)",
			os.Getenv("PLANTROOM_CH_CLUSTER"))
	}
	return nodes
}

// clusterBatch: 24 devices (spread over both shards by the sharding key),
// a kWh counter and a pressure each, a reading a minute for two hours.
func clusterBatch() *ReadingBatch {
	hour := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	var b ReadingBatch
	for d := 0; d < 24; d++ {
		dev := fmt.Sprintf("dev-%02d", d)
		for i := 0; i < 120; i++ {
			ts := hour + int64(i)*60_000
			b.Add("acme", "garden", "gw-garden-1", uint64(d+1), &protocol.Reading{Device: dev, Metric: "energy_import_kwh", TS: ts, Value: 1000*float64(d) + float64(i)*0.5})
			b.Add("acme", "garden", "gw-garden-1", uint64(d+1), &protocol.Reading{Device: dev, Metric: "outlet_pressure_bar", TS: ts, Value: 3 + float64((i+d)%7)/10})
		}
	}
	return &b
}

func TestClusterReadingsThroughDistributedTables(t *testing.T) {
	nodes := clusterNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name := fmt.Sprintf("plantroom_cluster_%d", time.Now().UnixNano())
	events := EventLogMigration[testEvent]("things", 1, "thing_events", "thing_id")
	// Version 2 adds a column on every node, to the Replicated and the
	// Distributed tables.
	link := EventLogColumnsMigration[testEventV2]("things", 2, "thing_events", "thing_id")
	// Version 3: the log's journal, one replica set across the cluster.
	journal := EventJournalMigration("things", 3, "thing_events")
	open := func(addr string) *DB {
		t.Helper()
		db, err := Open(ctx, Options{Addr: addr, Database: name, Cluster: clusterName})
		if err != nil {
			t.Fatalf("Open %s: %v", addr, err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db1 := open(nodes[0])
	if err := db1.Migrate(ctx, events, link, journal); err != nil {
		t.Fatalf("migrate through %s: %v", nodes[0], err)
	}
	db2 := open(nodes[1])
	// The second process finds the schema (and the migrations table) in place.
	if err := db2.Migrate(ctx, events, link, journal); err != nil {
		t.Fatalf("migrate through %s: %v", nodes[1], err)
	}
	// The column migration run again (an interrupted start) is harmless on
	// a cluster too, where ClickHouse 18.16 reports the existing column
	// from the distributed DDL task.
	again := link
	again.Component = "things-again"
	if err := db2.Migrate(ctx, again); err != nil {
		t.Fatalf("the column migration again through %s: %v", nodes[1], err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		db1.Conn().Exec(c, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" ON CLUSTER "+clusterName)
	})

	// Every server holds the same tables: Replicated* data tables, a
	// Distributed front on each, the roll-up view beside the local tables.
	for i, db := range []*DB{db1, db2} {
		got := engines(t, ctx, db)
		for table, want := range map[string]string{
			"readings_local":        "ReplicatedReplacingMergeTree",
			"readings":              "Distributed",
			"readings_hourly_local": "ReplicatedAggregatingMergeTree",
			"readings_hourly":       "Distributed",
			"events_local":          "ReplicatedReplacingMergeTree",
			"events":                "Distributed",
			"thing_events_local":    "ReplicatedReplacingMergeTree",
			"thing_events":          "Distributed",
			MigrationsTable:         "ReplicatedReplacingMergeTree",
		} {
			if got[table] != want {
				t.Errorf("shard %d: %s engine %q, want %q (all: %v)", i+1, table, got[table], want, got)
			}
		}
		var readonly uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM system.replicas WHERE database = ? AND is_readonly", name).Scan(&readonly); err != nil || readonly != 0 {
			t.Errorf("shard %d: %d read-only replicas (%v): ZooKeeper session?", i+1, readonly, err)
		}
	}

	// The ingest writes through shard 1; again through shard 2 (a
	// redelivery to another ingest replica): nothing is counted twice.
	b := clusterBatch()
	if err := db1.InsertReadings(ctx, b); err != nil {
		t.Fatalf("InsertReadings through %s: %v", nodes[0], err)
	}
	if err := db2.InsertReadings(ctx, b); err != nil {
		t.Fatalf("InsertReadings through %s: %v", nodes[1], err)
	}
	want := uint64(b.Len())
	// Distributed inserts reach the other shard in the background.
	deadline := time.Now().Add(90 * time.Second)
	for {
		final, _ := countReadingsCtx(t, ctx, db2)
		if final == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("through %s: count FINAL = %d, want %d", nodes[1], final, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Both shards hold part of the data, and the parts add up.
	var local [2]uint64
	for i, db := range []*DB{db1, db2} {
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+quoteIdent(name)+".readings_local FINAL").Scan(&local[i]); err != nil {
			t.Fatal(err)
		}
	}
	if local[0] == 0 || local[1] == 0 || local[0]+local[1] != want {
		t.Errorf("readings per shard %d + %d, want both > 0 and %d in all", local[0], local[1], want)
	}
	t.Logf("readings per shard: %d and %d", local[0], local[1])

	// The same batch on the single server gives the reference figures.
	single := openTestDB(t, SchemaOptions{})
	if err := single.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := single.InsertReadings(ctx, b); err != nil {
		t.Fatal(err)
	}
	ref := hourlyFigures(t, single)
	for i, db := range []*DB{db1, db2} {
		if got := hourlyFigures(t, db); got != ref {
			t.Errorf("hourly roll-up through shard %d differs from the single server:\n%s\nwant:\n%s", i+1, got, ref)
		}
	}

	// The energy report's queries read through the Distributed tables.
	keys := []energy.Key{{Device: "dev-03", Metric: "energy_import_kwh"}, {Device: "dev-17", Metric: "energy_import_kwh"}}
	w := energy.Where{Company: "acme", Projects: []string{"garden"}}
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	refHours, err := single.Readings().Hours(ctx, w, keys, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(refHours[keys[0]]) != 2 || refHours[keys[0]][1].Last != 3059.5 {
		t.Fatalf("single server hours of %v: %+v", keys[0], refHours[keys[0]])
	}
	for i, db := range []*DB{db1, db2} {
		got, err := db.Readings().Hours(ctx, w, keys, from, to)
		if err != nil {
			t.Fatalf("energy hours through shard %d: %v", i+1, err)
		}
		// The same rows, version (n_rows, ts_sum) included: the second
		// insert of the same batch was an identical block, which the
		// Replicated tables drop (and the view with them).
		if fmt.Sprint(got) != fmt.Sprint(refHours) {
			t.Errorf("energy hours through shard %d: %v, want %v", i+1, got, refHours)
		}
		// Step summaries through the Distributed tables (readings,
		// readings_hourly for the exact counts, counter_steps).
		steps, err := db.Readings().Steps(ctx, w, got)
		if err != nil {
			t.Fatalf("step summaries through shard %d: %v", i+1, err)
		}
		for _, k := range keys {
			if len(steps[k]) != 2 || steps[k][0].N != 60 || steps[k][1].N != 60 || steps[k][0].Falls {
				t.Errorf("step summaries of %v through shard %d: %+v", k, i+1, steps[k])
			}
		}
	}
	latest, err := db2.Readings().Latest(ctx, "acme", "garden", []string{"dev-05", "dev-20"}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if v := latest["dev-20"]["energy_import_kwh"]; v.Value != 20059.5 {
		t.Errorf("latest dev-20 energy through shard 2: %+v, want 20059.5", v)
	}
	if v := latest["dev-05"]["energy_import_kwh"]; v.Value != 5059.5 {
		t.Errorf("latest dev-05 energy through shard 2: %+v, want 5059.5", v)
	}

	// An event log (alarms, work orders) appended through one shard is read
	// back whole through the other.
	l1 := NewEventLog[testEventV2](db1.Conn(), "thing_events", "thing_id").WithJournal("at_ms")
	l2 := NewEventLog[testEventV2](db2.Conn(), "thing_events", "thing_id").WithJournal("at_ms")
	// A snapshot written through node 1 before the appends.
	taken := time.Now()
	if err := l1.WriteSnapshot(ctx, Snapshot{Taken: taken, Seq: 1, Held: []HeldKey{{"acme", "p9", "t-9", time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}}}); err != nil {
		t.Fatalf("snapshot through node 1: %v", err)
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	var evs []testEventV2
	for p := 0; p < 6; p++ {
		for n := uint32(1); n <= 3; n++ {
			seq := uint64(p*10) + uint64(n)
			a := at.Add(time.Duration(seq) * time.Minute)
			evs = append(evs, testEventV2{ID: fmt.Sprintf("t-%d", p), N: n, Seq: seq, At: a, AtMS: a.UnixMilli(), Company: "acme",
				Project: fmt.Sprintf("p%d", p), Device: "pump", Gateway: "gw", State: fmt.Sprintf("s%d", n), Link: fmt.Sprintf("t-%d", p-1)})
		}
	}
	if err := l1.Append(ctx, evs); err != nil {
		t.Fatalf("append through shard 1: %v", err)
	}
	if err := l2.Append(ctx, evs[:3]); err != nil { // a retried append
		t.Fatalf("append through shard 2: %v", err)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		all, err := l2.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) == len(evs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event log through shard 2: %d events, want %d", len(all), len(evs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	of, err := l2.Of(ctx, "t-4")
	if err != nil || len(of) != 3 || of[2].State != "s3" || of[2].Link != "t-3" {
		t.Errorf("events of t-4 through shard 2: %+v, %v (want 3, the last s3 linking to t-3)", of, err)
	}
	// The bounded reads (alarms and orders beyond what the cloud holds):
	// keys by their latest row across shards, then their rows and events.
	cur, err := l2.Current(ctx, Query{Fixed: []Cond{In("project", []string{"p1", "p4", "p5"})}, Where: []Cond{Eq("state", "s3")},
		OrderBy: []Order{{Col: "seq", Desc: true}}, Limit: 2})
	if err != nil || len(cur) != 2 || cur[0].ID != "t-5" || cur[1].ID != "t-4" || cur[0].N != 3 {
		t.Errorf("current of p1, p4, p5 through shard 2: %+v, %v (want t-5 then t-4, each its latest)", cur, err)
	}
	evsOf, err := l2.EventsOf(ctx, []string{"t-0", "t-3"})
	if err != nil || len(evsOf) != 6 || evsOf[0].ID != "t-0" || evsOf[5].ID != "t-3" {
		t.Errorf("events of t-0 and t-3 through shard 2: %d, %v", len(evsOf), err)
	}
	if m, err := l2.MaxSeq(ctx); err != nil || m != 53 {
		t.Errorf("max seq through shard 2: %d %v, want 53", m, err)
	}
	// Keys sent as an external table reach both shards.
	among, err := l2.Current(ctx, Query{Among: []string{"t-1", "t-4", "t-8"}, OrderBy: []Order{{Col: "seq"}}, Limit: 10})
	if err != nil || len(among) != 2 || among[0].ID != "t-1" || among[1].ID != "t-4" || among[1].N != 3 {
		t.Errorf("current among t-1, t-4, t-8 through shard 2: %+v, %v", among, err)
	}
	if v, err := l2.NewestAmong(ctx, "at_ms", []string{"t-1", "t-4"}); err != nil || v != at.Add(43*time.Minute).UnixMilli() {
		t.Errorf("newest at_ms among t-1, t-4 through shard 2: %d %v, want t-4's last", v, err)
	}

	// A start on node 2 (a new owner) resumes from node 1's snapshot and
	// the keys appended since, through either shard.
	deadline = time.Now().Add(90 * time.Second)
	for {
		r, ok, err := l2.Resume(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok && len(r.Keys) == 7 && r.Seq == 53 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resume through node 2: %v %+v; want t-9 and t-0…t-5, sequence 53", ok, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A snapshot three days on, through node 2, drops the older days on
	// every replica.
	if err := l2.WriteSnapshot(ctx, Snapshot{Taken: taken.AddDate(0, 0, 3), Seq: 60}); err != nil {
		t.Fatalf("snapshot through node 2: %v", err)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		var n uint64
		if err := db1.Conn().QueryRow(ctx, "SELECT count() FROM thing_events_journal WHERE written < ?", taken.AddDate(0, 0, 1).UTC()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		r, ok, err := l1.Resume(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && ok && r.Seq == 60 && len(r.Keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1 after the prune through node 2: %d old journal rows, resume %v %+v", n, ok, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func engines(t *testing.T, ctx context.Context, db *DB) map[string]string {
	t.Helper()
	rows, err := db.Conn().Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", db.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, e string
		if err := rows.Scan(&n, &e); err != nil {
			t.Fatal(err)
		}
		out[n] = e
	}
	return out
}

func countReadingsCtx(t *testing.T, ctx context.Context, db *DB) (final uint64, err error) {
	t.Helper()
	err = db.Conn().QueryRow(ctx, "SELECT count() FROM readings FINAL").Scan(&final)
	return final, err
}
