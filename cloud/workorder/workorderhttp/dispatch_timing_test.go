package workorderhttp

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// BenchmarkReadingToWorkOrder measures, through the real embedded broker,
// ingest, ClickHouse, alarm engine and desk, the time from a reading's
// arrival at ingest to its alarm's work order being stored and assigned.
// Each iteration raises a trapped-passenger alarm, then the manager
// cancels the order and the flag clears, so the next raise opens a new
// order. It reports p50 and p99 (target: p99 ≤ 1 s):
//
//	go test -run '^$' -bench ReadingToWorkOrder -benchtime 200x ./cloud/workorder/
func BenchmarkReadingToWorkOrder(b *testing.B) {
	c := startCloud(b)
	gwc := connectGateway(b, c, "gw-garden-1", "demo-gw-garden-1-secret")
	gw, _ := c.b.Org.FindGateway("gw-garden-1")
	hq := alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}
	pm := alarm.Viewer{Staff: "pm-garden", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden"}}
	// Device time advances 33 s per iteration and must end in the past
	// (ingest rejects readings from the future).
	ts := time.Now().Add(-time.Duration(b.N)*40*time.Second - time.Minute).UnixMilli()
	var seq uint64
	send := func(v float64) {
		seq++
		ts += 1000
		payload, err := protocol.AppendBatch(nil, &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: seq, SentAt: ts,
			Readings: []protocol.Reading{{Device: "garden-elevator-1", Metric: "trapped", TS: ts, Value: v}}})
		if err != nil {
			b.Fatal(err)
		}
		if tok := gwc.Publish(gw.Ref().Topic(protocol.KindTelemetry), 1, false, payload); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		deadline := time.Now().Add(20 * time.Second)
		for !c.latency.processed(seq) {
			if time.Now().After(deadline) {
				b.Fatal("batch not processed")
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send(1)
		open := mustOrders(c.desk.List(context.Background(), hq, workorder.Filter{Device: "garden-elevator-1", State: workorder.StateAssigned}))
		if len(open) != 1 {
			b.Fatalf("iteration %d: %d assigned orders", i, len(open))
		}
		b.StopTimer()
		if _, err := c.desk.Transition(context.Background(), pm, open[0].ID, workorder.TransitionRequest{To: workorder.StateCancelled}); err != nil {
			b.Fatal(err)
		}
		send(0)
		ts += 30000 // the flag stays 0 past the 30 s hold
		send(0)
		b.StartTimer()
	}
	b.StopTimer()
	ds := c.latency.samples()
	if len(ds) != b.N {
		b.Fatalf("%d latency samples for %d iterations", len(ds), b.N)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, "max-ms")
}
