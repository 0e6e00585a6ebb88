package broker

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkStore measures what broker.store_path costs: QoS 1 messages from
// a gateway to the ingest's persistent session through a broker that keeps
// sessions in memory (the baseline) and through one that keeps them in its
// bbolt store, in the same run. It reports msgs/s with the store,
// memory-msgs/s without it, and their ratio.
//
//	go test -run '^$' -bench Store -benchtime 2000x ./cloud/broker/
func BenchmarkStore(b *testing.B) {
	payload := strings.Repeat("x", 1700) // about a 100-reading batch
	const window = 16                    // the edge's default in-flight window is 8; two gateways' worth
	run := func(storePath string) time.Duration {
		br := startBroker(b, func(c *Config) { c.StorePath = storePath })
		var got atomic.Int64
		sub := mustDial(b, br.Addr(), clientOpts{user: "ingest", password: br.ingestPW, id: "ingest-1",
			handler: func(paho.Client, paho.Message) { got.Add(1) }})
		subscribe(b, sub, "plantroom/v2/+/+/+/telemetry")
		gw := mustDial(b, br.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
		wait := func(tok paho.Token) {
			if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
				b.Fatalf("publish: %v", tok.Error())
			}
		}
		t0 := time.Now()
		var toks []paho.Token
		for i := 0; i < b.N; i++ {
			if len(toks) == window {
				wait(toks[0])
				toks = toks[1:]
			}
			toks = append(toks, gw.Publish(gardenTelemetry, 1, false, payload))
		}
		for _, tok := range toks {
			wait(tok)
		}
		deadline := time.Now().Add(time.Minute)
		for got.Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("the subscriber got %d of %d messages", got.Load(), b.N)
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(t0)
		sub.Disconnect(50)
		gw.Disconnect(50)
		br.Stop()
		return d
	}
	b.StopTimer()
	mem := run("")
	b.StartTimer()
	stored := run(filepath.Join(b.TempDir(), fmt.Sprintf("broker-%d.db", b.N)))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/stored.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/mem.Seconds(), "memory-msgs/s")
	b.ReportMetric(mem.Seconds()/stored.Seconds(), "ratio")
}
