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
// instants, 1 s apart) with sequence number firstSeq+s in epoch.
func benchBatch(s int, start time.Time, epoch uint64, firstSeq int) *protocol.Batch {
	const instants = protocol.MaxBatchReadings / 20
	t0 := start.Add(time.Duration(s*instants) * time.Second)
	b := &protocol.Batch{Epoch: epoch, Gateway: "gw-garden-1", Seq: uint64(firstSeq + s), SentAt: t0.UnixMilli()}
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
// ClickHouse) in two modes, and, in the same run, the rate at which
// clickhouse-go inserts the same rows straight into a second copy of the
// schema:
//
//	readings/s        with commit acknowledgements: the gateway listens on
//	                  its down/ack topic, as a version-2 edge does, and a
//	                  run ends when the last batch is acknowledged
//	noack-readings/s  the same with the committed-batches check, the marks
//	                  and the acks turned off: the baseline of their cost
//	ack-ratio         readings/s ÷ noack-readings/s (target ≥ 0.9)
//	raw-readings/s    the bare clickhouse-go insert; ratio = readings/s ÷ it
//
// Each iteration runs all three on fresh rows, the two ingest modes in
// alternating order, so that the ratios compare runs made under the same
// load of the machine.
//
//	go test -run '^$' -bench EndToEnd -benchtime 3x ./cloud/ingest/
func BenchmarkEndToEnd(b *testing.B) {
	const batches = 100 // 1,000,000 readings per run
	e := newEnv(b, envOptions{})
	e.cfg.Observers = nil
	gw := e.gateway(garden, "gw-garden-1", nil)
	var acked ackInbox
	listenAcks(b, gw, garden, &acked)
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

	// ingestWith replaces the running ingest by one in the given mode,
	// warmed up (connections, pools, the first parts of each table) with
	// ten batches of its own seq space (epoch 2, so the measured epoch 1
	// starts above no committed seq, as a new gateway's does).
	flushRows := e.ingest.cfg.FlushRows
	warmups := 0
	ingestWith := func(acks bool) *Ingest {
		e.ingest.Stop()
		e.cfg.withoutCommitAcks = !acks
		in := e.startIngest()
		warmups++
		for i := 0; i < 10; i++ {
			bt := benchBatch(i, time.Now().AddDate(0, 0, -300+warmups).Truncate(time.Hour), 2, warmups*1000)
			p, err := protocol.AppendBatch(nil, bt)
			if err != nil {
				b.Fatal(err)
			}
			if tok := gw.Publish(topic, 1, false, p); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
				b.Fatalf("publish: %v", tok.Error())
			}
		}
		for e.metric(in.metrics.readings) < 10*protocol.MaxBatchReadings {
			time.Sleep(5 * time.Millisecond)
		}
		return in
	}

	// Warm up the raw path too.
	var warm store.ReadingBatch
	for i := 0; i < 10; i++ {
		bt := benchBatch(i, time.Now().AddDate(0, 0, -300).Truncate(time.Hour), 2, 1)
		for j := range bt.Readings {
			warm.Add("acme", "garden", "gw-garden-1", bt.Seq, &bt.Readings[j])
		}
	}
	if err := raw.InsertReadings(ctx, &warm); err != nil {
		b.Fatal(err)
	}

	var rawTotal time.Duration
	e2eTotal := map[bool]time.Duration{}
	var rawInserts, readings int
	var flushes uint64
	var flushSum float64
	// Recent enough for the ingest's max_age (400 days): every run is 14 h
	// of readings, each a day and a half after the last one, never in the
	// future for b.N ≤ 50.
	start := time.Now().AddDate(0, 0, -180).Truncate(time.Hour)
	run := 0
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		n := batches * protocol.MaxBatchReadings

		// Raw: the same amount of rows through clickhouse-go, in inserts
		// of the ingest's flush size. Only the inserts are timed; the
		// columns are rebuilt between them, so no big heap of prepared
		// rows slows the collector.
		quiesce(b, e.db, raw.Database())
		rawStart := start.Add(time.Duration(run) * 36 * time.Hour)
		run++
		var rb store.ReadingBatch
		for s := 0; s < batches; s++ {
			bt := benchBatch(s, rawStart, 1, 1)
			for j := range bt.Readings {
				rb.Add("acme", "garden", "gw-garden-1", bt.Seq, &bt.Readings[j])
			}
			if rb.Len() >= flushRows || s == batches-1 {
				t1 := time.Now()
				if err := raw.InsertReadings(ctx, &rb); err != nil {
					b.Fatal(err)
				}
				rawTotal += time.Since(t1)
				rawInserts++
				rb.Reset()
			}
		}

		for _, acks := range []bool{iter%2 == 0, iter%2 != 0} {
			in := ingestWith(acks)
			runStart := start.Add(time.Duration(run) * 36 * time.Hour)
			firstSeq := run*batches + 1
			run++
			payloads := make([][]byte, batches)
			for s := range payloads {
				if payloads[s], err = protocol.AppendBatch(nil, benchBatch(s, runStart, 1, firstSeq)); err != nil {
					b.Fatal(err)
				}
			}
			from := runStart.UnixMilli()
			to := runStart.Add(time.Duration(batches*protocol.MaxBatchReadings/20) * time.Second).UnixMilli()
			before := e.metric(in.metrics.readings)
			runtime.GC()
			quiesce(b, e.db, raw.Database())
			b.StartTimer()

			// End to end: publish everything, wait for the committed rows
			// and, with acks, until the gateway holds the last ack.
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
			if acks {
				for !acked.covered(1, uint64(firstSeq), uint64(firstSeq+batches-1)) {
					time.Sleep(2 * time.Millisecond)
				}
			}
			e2eTotal[acks] += time.Since(t0)
			b.StopTimer()

			// Every reading of the run is stored exactly once.
			var got uint64
			q := "SELECT count() FROM readings FINAL WHERE ts_ms >= ? AND ts_ms < ?"
			if err := e.db.Conn().QueryRow(ctx, q, from, to).Scan(&got); err != nil || got != uint64(n) {
				b.Fatalf("%s holds %d readings of the run, want %d (%v)", e.db.Database(), got, n, err)
			}
			var fs dto.Metric
			in.metrics.flushSeconds.Write(&fs)
			flushes += fs.GetHistogram().GetSampleCount()
			flushSum += fs.GetHistogram().GetSampleSum()
		}
		readings += n
		b.StartTimer()
	}
	b.StopTimer()
	ackRate := float64(readings) / e2eTotal[true].Seconds()
	noAckRate := float64(readings) / e2eTotal[false].Seconds()
	rawRate := float64(readings) / rawTotal.Seconds()
	b.ReportMetric(ackRate, "readings/s")
	b.ReportMetric(noAckRate, "noack-readings/s")
	b.ReportMetric(ackRate/noAckRate, "ack-ratio")
	b.ReportMetric(rawRate, "raw-readings/s")
	b.ReportMetric(ackRate/rawRate, "ratio")
	b.ReportMetric(0, "ns/op")
	b.Logf("ingest flushes: %d, mean %.1f ms; raw inserts: %d, mean %.1f ms", flushes, 1000*flushSum/float64(flushes),
		rawInserts, 1000*rawTotal.Seconds()/float64(rawInserts))
	b.Logf("end to end with acks %.0f readings/s, without %.0f readings/s (ratio %.2f), raw clickhouse-go insert %.0f readings/s (%d readings per mode)",
		ackRate, noAckRate, ackRate/noAckRate, rawRate, readings)
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
