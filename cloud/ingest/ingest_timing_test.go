package ingest

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/protocol"
)

var benchMetrics = func() []string {
	out := make([]string, 10)
	for m := range out {
		out[m] = fmt.Sprintf("metric_%d", m)
	}
	return out
}()

// benchBatch builds batch number s of a run starting at start:
// protocol.MaxBatchReadings readings (2 devices × 10 metrics × 500
// instants, 1 s apart) with sequence number firstSeq+s.
func benchBatch(s int, start time.Time, firstSeq int) *protocol.Batch {
	const instants = protocol.MaxBatchReadings / 20
	t0 := start.Add(time.Duration(s*instants) * time.Second)
	b := &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: uint64(firstSeq + s), SentAt: t0.UnixMilli()}
	b.Readings = make([]protocol.Reading, 0, protocol.MaxBatchReadings)
	for _, d := range []string{"garden-meter-main", "garden-pump-1"} {
		for _, metric := range benchMetrics {
			for i := 0; i < instants; i++ {
				ts := t0.Add(time.Duration(i) * time.Second).UnixMilli()
				b.Readings = append(b.Readings, protocol.Reading{Device: d, Metric: metric, TS: ts, Value: float64(s*instants+i) * 0.25})
			}
		}
	}
	return b
}

// BenchmarkEndToEnd measures readings per second from MQTT publish to
// committed ClickHouse rows (gateway → embedded broker → ingest →
// ClickHouse), and, in the same run, the rate at which clickhouse-go
// inserts the same rows straight into a second copy of the schema. The
// ratio of the two is the ingest's efficiency.
//
// The gateway listens for the commit acknowledgements, as a version-2 edge
// does; BenchmarkEndToEndWithoutAcks is the same run with the committed-
// batches check, the marks and the acks turned off, the baseline of their
// cost.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./cloud/ingest/
func BenchmarkEndToEnd(b *testing.B) { benchEndToEnd(b, true) }

// BenchmarkEndToEndWithoutAcks is BenchmarkEndToEnd without commit
// acknowledgements.
func BenchmarkEndToEndWithoutAcks(b *testing.B) { benchEndToEnd(b, false) }

func benchEndToEnd(b *testing.B, acks bool) {
	const batches = 100 // 1,000,000 readings per run
	e := newEnv(b, envOptions{})
	e.cfg.Observers = nil
	e.cfg.withoutCommitAcks = !acks
	e.ingest.Stop()
	in := e.startIngest()
	gw := e.gateway(garden, "gw-garden-1", nil)
	var acked ackInbox
	if acks {
		listenAcks(b, gw, garden, &acked)
	}
	topic := garden.Topic(protocol.KindTelemetry)

	// The raw baseline writes into its own database with the same schema
	// (materialized view included).
	_, rawName := chtest.NewDatabase(b)
	ch := chtest.Addr(b)
	ctx := context.Background()
	raw, err := store.Open(ctx, store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: rawName})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Migrate(ctx); err != nil {
		b.Fatal(err)
	}

	// Warm up both paths (connections, pools, the first parts of each
	// table) outside the measurement.
	var warm store.ReadingBatch
	for i := 0; i < 10; i++ {
		bt := benchBatch(i, time.Now().AddDate(0, 0, -200).Truncate(time.Hour), 1_000_000)
		p, err := protocol.AppendBatch(nil, bt)
		if err != nil {
			b.Fatal(err)
		}
		if tok := gw.Publish(topic, 1, false, p); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			b.Fatalf("publish: %v", tok.Error())
		}
		for j := range bt.Readings {
			warm.Add("acme", "garden", "gw-garden-1", bt.Seq, &bt.Readings[j])
		}
	}
	if err := raw.InsertReadings(ctx, &warm); err != nil {
		b.Fatal(err)
	}
	for e.metric(in.metrics.readings) < float64(warm.Len()) {
		time.Sleep(5 * time.Millisecond)
	}

	var e2eTotal, rawTotal time.Duration
	var rawInserts int
	var readings int
	// Recent enough for the ingest's max_age (400 days), each iteration a
	// month later and never in the future for b.N ≤ 5.
	start := time.Now().AddDate(0, 0, -180).Truncate(time.Hour)
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		runStart, firstSeq := start.Add(time.Duration(iter)*30*24*time.Hour), iter*batches+1
		payloads := make([][]byte, batches)
		for s := range payloads {
			if payloads[s], err = protocol.AppendBatch(nil, benchBatch(s, runStart, firstSeq)); err != nil {
				b.Fatal(err)
			}
		}
		from := runStart.UnixMilli()
		to := runStart.Add(time.Duration(batches*protocol.MaxBatchReadings/20) * time.Second).UnixMilli()
		n := batches * protocol.MaxBatchReadings
		before := e.metric(in.metrics.readings)
		warm = store.ReadingBatch{}
		quiesce(b, e.db, raw.Database())

		// Raw: the same rows through clickhouse-go, in inserts of the
		// ingest's flush size. Only the inserts are timed; the columns are
		// rebuilt between them, so no big heap of prepared rows slows the
		// collector.
		var rawDur time.Duration
		var rb store.ReadingBatch
		for s := 0; s < batches; s++ {
			bt := benchBatch(s, runStart, firstSeq)
			for j := range bt.Readings {
				rb.Add("acme", "garden", "gw-garden-1", bt.Seq, &bt.Readings[j])
			}
			if rb.Len() >= in.cfg.FlushRows || s == batches-1 {
				t1 := time.Now()
				if err := raw.InsertReadings(ctx, &rb); err != nil {
					b.Fatal(err)
				}
				rawDur += time.Since(t1)
				rawInserts++
				rb.Reset()
			}
		}
		runtime.GC()
		quiesce(b, e.db, raw.Database())
		b.StartTimer()

		// End to end: publish everything, wait for the committed rows.
		t0 := time.Now()
		toks := make([]paho.Token, len(payloads))
		for i, p := range payloads {
			toks[i] = gw.Publish(topic, 1, false, p)
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(2*time.Minute) || tok.Error() != nil {
				b.Fatalf("publish: %v", tok.Error())
			}
		}
		for e.metric(in.metrics.readings)-before < float64(n) {
			time.Sleep(2 * time.Millisecond)
		}
		if acks { // until the gateway holds the last ack
			for !acked.covered(1, uint64(firstSeq), uint64(firstSeq+batches-1)) {
				time.Sleep(2 * time.Millisecond)
			}
		}
		e2e := time.Since(t0)

		b.StopTimer()

		// Both hold every reading exactly once.
		for _, db := range []*store.DB{e.db, raw} {
			var got uint64
			q := "SELECT count() FROM readings FINAL WHERE ts_ms >= ? AND ts_ms < ?"
			if err := db.Conn().QueryRow(ctx, q, from, to).Scan(&got); err != nil || got != uint64(n) {
				b.Fatalf("%s holds %d readings of the run, want %d (%v)", db.Database(), got, n, err)
			}
		}
		e2eTotal += e2e
		rawTotal += rawDur
		readings += n
		b.StartTimer()
	}
	b.StopTimer()
	e2eRate := float64(readings) / e2eTotal.Seconds()
	rawRate := float64(readings) / rawTotal.Seconds()
	b.ReportMetric(e2eRate, "readings/s")
	b.ReportMetric(rawRate, "raw-readings/s")
	b.ReportMetric(e2eRate/rawRate, "ratio")
	b.ReportMetric(0, "ns/op")
	var fs dto.Metric
	in.metrics.flushSeconds.Write(&fs)
	b.Logf("ingest flushes: %d, mean %.1f ms; raw inserts: %d, mean %.1f ms", fs.GetHistogram().GetSampleCount(),
		1000*fs.GetHistogram().GetSampleSum()/float64(fs.GetHistogram().GetSampleCount()), rawInserts, 1000*rawTotal.Seconds()/float64(rawInserts))
	b.Logf("end to end %.0f readings/s, raw clickhouse-go insert %.0f readings/s, ratio %.2f (%d readings)", e2eRate, rawRate, e2eRate/rawRate, readings)
}

// quiesce waits (up to a minute) for ClickHouse to finish its background
// merges, so that one measurement does not pay for the previous one's.
func quiesce(b *testing.B, db *store.DB, other string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var n uint64
		if err := db.Conn().QueryRow(context.Background(), "SELECT count() FROM system.merges WHERE database IN (?, ?)", db.Database(), other).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
