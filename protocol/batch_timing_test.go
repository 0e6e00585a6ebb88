package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

// Run with:
//
//	go test -run '^$' -bench Batch -benchmem -cpu 1 ./protocol/
//
// Target: at least 2,000,000 readings/s decoded on one core.
// BenchmarkDecodeBatchJSON is the baseline: the same readings as the JSON
// array a naive gateway protocol would send, decoded with encoding/json.

// makeBenchBatch builds a realistic batch of n readings: 30 devices of 30
// metrics each, polled one device per second, values drifting like real
// measurements.
func makeBenchBatch(n int) Batch {
	const devices, metrics = 30, 30
	b := Batch{Gateway: "gw-garden-1", Epoch: 4011536289077452891, Seq: 123456, Readings: make([]Reading, 0, n)}
	start := int64(1773475200000)
	for i := 0; i < n; i++ {
		poll := i / metrics // one poll reads every metric of one device
		d, m := poll%devices, i%metrics
		v := 230 + 10*math.Sin(float64(i)/7) + float64(m)
		b.Readings = append(b.Readings, Reading{
			Device:  fmt.Sprintf("garden-device-%02d", d),
			Metric:  fmt.Sprintf("metric_%02d_value", m),
			TS:      start + int64(poll)*1000,
			Value:   math.Round(v*100) / 100,
			Quality: QualityGood,
		})
	}
	b.SentAt = b.Readings[n-1].TS + 250
	return b
}

func BenchmarkAppendBatch(b *testing.B) {
	batch := makeBenchBatch(1000)
	buf, err := AppendBatch(nil, &batch)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if buf, err = AppendBatch(buf[:0], &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Readings))/b.Elapsed().Seconds(), "readings/s")
}

func BenchmarkDecodeBatch(b *testing.B) {
	batch := makeBenchBatch(1000)
	data, err := AppendBatch(nil, &batch)
	if err != nil {
		b.Fatal(err)
	}
	var into Batch
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := DecodeBatch(data, &into); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Readings))/b.Elapsed().Seconds(), "readings/s")
}

// jsonReading is the baseline encoding of a reading.
type jsonReading struct {
	Device  string  `json:"device"`
	Metric  string  `json:"metric"`
	TS      int64   `json:"ts"`
	Value   float64 `json:"value"`
	Quality uint8   `json:"quality"`
}

func BenchmarkDecodeBatchJSON(b *testing.B) {
	batch := makeBenchBatch(1000)
	rs := make([]jsonReading, len(batch.Readings))
	for i, r := range batch.Readings {
		rs[i] = jsonReading{r.Device, r.Metric, r.TS, r.Value, uint8(r.Quality)}
	}
	data, err := json.Marshal(rs)
	if err != nil {
		b.Fatal(err)
	}
	var into []jsonReading
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		into = into[:0]
		if err := json.Unmarshal(data, &into); err != nil {
			b.Fatal(err)
		}
		if len(into) != len(rs) {
			b.Fatalf("decoded %d readings, want %d", len(into), len(rs))
		}
	}
	b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
}
