package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/protocol"
)

// poisonValue is the value the test tables refuse.
const poisonValue = 13013

func (e *env) exec(query string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.db.Conn().Exec(ctx, query); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// A batch with readings ClickHouse refuses (a check that throws, as a CHECK
// constraint or a column that cannot take the value would; 18.16 has no
// constraints) and an event it refuses: the refused rows land in the
// quarantine with their cause, the rest of the batch is stored, the batch
// is acknowledged, the gateway's next batch and another gateway's batch
// are stored, and nothing refused reaches the observers.
func TestRefusedRowsQuarantined(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.exec(fmt.Sprintf("ALTER TABLE readings ADD COLUMN poison UInt8 MATERIALIZED throwIf(value = %d)", poisonValue))
	e.exec("ALTER TABLE events ADD COLUMN poison UInt8 MATERIALIZED throwIf(message = 'poison')")

	gw := e.gateway(garden, "gw-garden-1", nil)
	inbox := &ackInbox{}
	listenAcks(t, gw, garden, inbox)
	tw := e.gateway(tower, "gw-tower-1", nil)

	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	b1 := makeBatch("gw-garden-1", 1, start, gardenDevices, 15) // 60 readings
	b1.Readings[7].Value, b1.Readings[44].Value = poisonValue, poisonValue
	poisoned := []protocol.Reading{b1.Readings[7], b1.Readings[44]}
	publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, b1))
	publish(t, gw, garden.Topic(protocol.KindEvents), protocol.EncodeEvent(protocol.Event{
		Gateway: "gw-garden-1", Seq: 1, Kind: "device_offline", Device: "garden-pump-1", TS: start.UnixMilli(), Message: "poison"}))
	publish(t, gw, garden.Topic(protocol.KindEvents), protocol.EncodeEvent(protocol.Event{
		Gateway: "gw-garden-1", Seq: 2, Kind: "device_online", Device: "garden-pump-1", TS: start.Add(time.Minute).UnixMilli()}))
	publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-garden-1", 2, start.Add(time.Hour), gardenDevices, 15)))
	publish(t, tw, tower.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-tower-1", 1, start, []string{"tower-meter-main"}, 15)))

	e.waitStored(120*time.Second, 58+60+30, e.ingest)
	waitFor(t, 20*time.Second, "the acks of seq 1 and 2", func() bool { return inbox.covered(1, 1, 2) })

	if n := e.count("SELECT count() FROM readings WHERE value = ?", float64(poisonValue)); n != 0 {
		t.Errorf("%d refused readings stored", n)
	}
	type qrow struct {
		Kind, Gateway, Device, Metric, Cause string
		Epoch, Seq                           uint64
		TS                                   int64
		Value                                float64
		Isolated                             uint8
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := e.db.Conn().Query(ctx, "SELECT kind, gateway, device, metric, cause, epoch, seq, ts_ms, value, isolated FROM quarantine FINAL ORDER BY kind, ts_ms, device")
	if err != nil {
		t.Fatal(err)
	}
	var got []qrow
	for rows.Next() {
		var r qrow
		if err := rows.Scan(&r.Kind, &r.Gateway, &r.Device, &r.Metric, &r.Cause, &r.Epoch, &r.Seq, &r.TS, &r.Value, &r.Isolated); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	rows.Close()
	want := []qrow{{Kind: "event", Gateway: "gw-garden-1", Device: "garden-pump-1", Metric: "device_offline", Cause: "check_failed", Seq: 1, TS: start.UnixMilli(), Isolated: 1}}
	for _, r := range poisoned {
		want = append(want, qrow{Kind: "reading", Gateway: "gw-garden-1", Device: r.Device, Metric: r.Metric, Cause: "check_failed",
			Epoch: 1, Seq: 1, TS: r.TS, Value: poisonValue, Isolated: 1})
	}
	slices.SortFunc(want[1:], func(a, b qrow) int { return int(a.TS - b.TS) })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("quarantine:\n got %+v\nwant %+v", got, want)
	}
	if n := e.count("SELECT count() FROM quarantine WHERE error LIKE '%throwIf%'"); n != 3 {
		t.Errorf("%d quarantined rows carry the server's message, want 3", n)
	}
	if n := e.count("SELECT count() FROM events FINAL WHERE kind IN ('device_offline', 'device_online')"); n != 1 {
		t.Errorf("%d device events stored, want the one not refused", n)
	}
	if got := e.metric(e.ingest.metrics.quarantined.WithLabelValues("reading", "check_failed")); got != 2 {
		t.Errorf("quarantined{reading,check_failed} = %v, want 2", got)
	}
	if got := e.metric(e.ingest.metrics.quarantined.WithLabelValues("event", "check_failed")); got != 1 {
		t.Errorf("quarantined{event,check_failed} = %v, want 1", got)
	}
	if got := e.metric(e.ingest.metrics.refusedWrites); got < 2 {
		t.Errorf("refused writes = %v, want at least 2 (readings, events)", got)
	}
	if got := e.metric(e.ingest.metrics.readings); got != 58+60+30 {
		t.Errorf("readings committed = %v, want %d", got, 58+60+30)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	n := 0
	for _, b := range e.obs.batches {
		for _, r := range b.Readings {
			n++
			if r.Value == poisonValue {
				t.Errorf("observers were told of the refused reading %+v", r)
			}
		}
	}
	if n != 58+60+30 {
		t.Errorf("observers saw %d readings, want %d", n, 58+60+30)
	}
	for _, ev := range e.obs.events {
		if ev.Message == "poison" {
			t.Errorf("observers were told of the refused event %+v", ev)
		}
	}
}

// A transient error (here the readings table gone: UNKNOWN_TABLE) holds the
// batch unacknowledged and retries it; nothing is quarantined; once the
// table is back the batch is stored and acknowledged.
func TestTransientErrorRetriedNotQuarantined(t *testing.T) {
	e := newEnv(t, envOptions{})
	gw := e.gateway(garden, "gw-garden-1", nil)
	inbox := &ackInbox{}
	listenAcks(t, gw, garden, inbox)
	e.exec("DETACH TABLE readings")
	attached := false
	t.Cleanup(func() {
		if !attached {
			e.exec("ATTACH TABLE readings")
		}
	})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, makeBatch("gw-garden-1", 1, start, gardenDevices, 10)))
	waitFor(t, 30*time.Second, "retries", func() bool { return e.metric(e.ingest.metrics.chErrors) >= 3 })
	if inbox.count() != 0 || e.metric(e.ingest.metrics.unacked) != 1 {
		t.Errorf("while the table is missing: %d acks, %v unacknowledged; want none and the batch held", inbox.count(), e.metric(e.ingest.metrics.unacked))
	}
	e.exec("ATTACH TABLE readings")
	attached = true
	e.waitStored(120*time.Second, 40, e.ingest)
	waitFor(t, 20*time.Second, "the ack", func() bool { return inbox.covered(1, 1, 1) })
	if n := e.count("SELECT count() FROM quarantine"); n != 0 {
		t.Errorf("%d rows quarantined for a transient error", n)
	}
}

// A batch spanning 13 months is stored in full although the server refuses
// an insert block over 5 partitions (as max_partitions_per_insert_block,
// default 100, does since ClickHouse 19.x; 18.16 has no such setting, so a
// view that throws on such a block stands in for it, and the store is told
// to put at most 4 months in an insert, as it puts 50 against the default).
// The batch spanned 323 months; each month costs two new parts, so
// the test keeps the numbers small.
func TestBatchOverManyMonthsStored(t *testing.T) {
	e := newEnv(t, envOptions{store: func(o *store.Options) { o.MonthsPerInsert = 4 }})
	e.exec("CREATE MATERIALIZED VIEW partition_limit ENGINE = Null AS SELECT throwIf(uniqExact(toYYYYMM(toDateTime(intDiv(ts_ms, 1000)))) > 5) AS too_many FROM readings")
	gw := e.gateway(garden, "gw-garden-1", nil)
	inbox := &ackInbox{}
	listenAcks(t, gw, garden, inbox)
	first := time.Now().UTC().AddDate(0, -13, 0)
	b := &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: 1, SentAt: time.Now().UnixMilli()}
	for m := 0; m < 13; m++ {
		ts := time.Date(first.Year(), first.Month()+time.Month(m), 15, 12, 0, 0, 0, time.UTC).UnixMilli()
		b.Readings = append(b.Readings, protocol.Reading{Device: "garden-meter-main", Metric: "energy_import_kwh", TS: ts, Value: float64(m)})
	}
	publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, b))
	e.waitStored(120*time.Second, 13, e.ingest)
	waitFor(t, 20*time.Second, "the ack", func() bool { return inbox.covered(1, 1, 1) })
	if n := e.count("SELECT uniqExact(_partition_id) FROM readings"); n != 13 {
		t.Errorf("%d partitions, want 13", n)
	}
	if n := e.count("SELECT count() FROM quarantine"); n != 0 {
		t.Errorf("%d rows quarantined", n)
	}
	if got := e.metric(e.ingest.metrics.refusedWrites); got != 0 {
		t.Errorf("refused writes = %v, want 0: no insert may exceed the partition limit", got)
	}
}

// isolate finds refused rows with at most the attempts given, reports what
// it could not narrow down by range, and stops at a transient error.
func TestIsolate(t *testing.T) {
	refusal := &clickhouse.Exception{Code: 395, Message: "Value passed to 'throwIf' function is non zero"}
	bad := map[int]bool{3: true, 700: true, 701: true}
	run := func(attempts int, transientAt int) (spans []refusedSpan, inserts int, err error) {
		err = isolate(1000, attempts, refusal, func(lo, hi int) error {
			inserts++
			if inserts == transientAt {
				return errors.New("connection reset")
			}
			for i := lo; i < hi; i++ {
				if bad[i] {
					return fmt.Errorf("cannot insert: %w", refusal)
				}
			}
			return nil
		}, func(s refusedSpan) { spans = append(spans, s) })
		return
	}
	spans, inserts, err := run(1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rows []int
	for _, s := range spans {
		if !s.alone || s.hi != s.lo+1 {
			t.Errorf("span %+v not narrowed to one row", s)
		}
		rows = append(rows, s.lo)
	}
	slices.Sort(rows)
	if fmt.Sprint(rows) != "[3 700 701]" || inserts > 3*2*10 {
		t.Errorf("refused rows %v after %d inserts, want [3 700 701] within 60", rows, inserts)
	}

	spans, inserts, err = run(4, 0)
	if err != nil || inserts != 4 {
		t.Fatalf("%d inserts, %v", inserts, err)
	}
	covered := 0
	for _, s := range spans {
		if s.alone {
			t.Errorf("span %+v alone with the attempts spent", s)
		}
		covered += s.hi - s.lo
	}
	for r := range bad {
		if !slices.ContainsFunc(spans, func(s refusedSpan) bool { return s.lo <= r && r < s.hi }) {
			t.Errorf("refused row %d in no span %+v", r, spans)
		}
	}
	if covered >= 1000 {
		t.Errorf("spans %+v cover every row: the good half was not stored", spans)
	}

	if _, _, err := run(1000, 5); err == nil || err.Error() != "connection reset" {
		t.Errorf("transient error during the search: %v, want it returned", err)
	}
}
