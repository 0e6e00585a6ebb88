package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestAppendBatchRejects(t *testing.T) {
	cases := []struct {
		name string
		edit func(b *Batch)
		want error
	}{
		{"bad gateway id", func(b *Batch) { b.Gateway = "gw#1" }, ErrID},
		{"empty gateway id", func(b *Batch) { b.Gateway = "" }, ErrID},
		{"no readings", func(b *Batch) { b.Readings = nil }, ErrEmpty},
		{"too many readings", func(b *Batch) {
			b.Readings = make([]Reading, MaxBatchReadings+1)
			for i := range b.Readings {
				b.Readings[i] = Reading{"pump-1", "power_w", testSent, 1, QualityGood}
			}
		}, ErrTooLarge},
		{"too many bytes", func(b *Batch) {
			// Distinct 64-character device ids fill the table past MaxBatchBytes.
			b.Readings = make([]Reading, MaxBatchReadings)
			for i := range b.Readings {
				b.Readings[i] = Reading{fmt.Sprintf("%064d", i), "power_w", testSent, 1, QualityGood}
			}
		}, ErrTooLarge},
		{"negative send time", func(b *Batch) { b.SentAt = -1 }, ErrTimestamp},
		{"bad device id", func(b *Batch) { b.Readings[2].Device = "pump/1" }, ErrID},
		{"bad metric", func(b *Batch) { b.Readings[1].Metric = "Energy" }, ErrMetric},
		{"NaN", func(b *Batch) { b.Readings[0].Value = math.NaN() }, ErrValue},
		{"+Inf", func(b *Batch) { b.Readings[1].Value = math.Inf(1) }, ErrValue},
		{"-Inf", func(b *Batch) { b.Readings[2].Value = math.Inf(-1) }, ErrValue},
		{"bad quality", func(b *Batch) { b.Readings[2].Quality = 3 }, ErrQuality},
		{"timestamp before MinTimestamp", func(b *Batch) { b.Readings[0].TS = MinTimestamp - 1 }, ErrTimestamp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := validBatch()
			c.edit(&b)
			dst := []byte("keep")
			out, err := AppendBatch(dst, &b)
			if !errors.Is(err, c.want) {
				t.Fatalf("AppendBatch error = %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "cannot encode batch: ") {
				t.Errorf("error %q does not say what failed", err)
			}
			if string(out) != "keep" {
				t.Errorf("AppendBatch returned %q on error, want dst unchanged", out)
			}
		})
	}
}

// TestBatchRoundTrip encodes random valid batches and decodes them back.
func TestBatchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, 5e-324, 1e300, 42949672.96}
	var into Batch
	for n := 0; n < 300; n++ {
		b := Batch{Gateway: fmt.Sprintf("gw-%d", rng.IntN(5)), Epoch: 1 + rng.Uint64N(MaxEpoch)>>rng.IntN(63),
			Seq: rng.Uint64() >> rng.IntN(64), SentAt: MinTimestamp + 3600_000 + rng.Int64N(1<<42)}
		encode := AppendBatch
		if n%10 == 0 { // a version-1 batch now and then
			b.Epoch, encode = 0, AppendBatchV1
		}
		count := 1 + rng.IntN(60)
		for i := 0; i < count; i++ {
			v := values[rng.IntN(len(values))]
			if rng.IntN(2) == 0 {
				v = rng.NormFloat64() * 1e4
			}
			b.Readings = append(b.Readings, Reading{
				Device:  fmt.Sprintf("dev-%d", rng.IntN(7)),
				Metric:  fmt.Sprintf("m%d.x_%d", rng.IntN(9), rng.IntN(2)),
				TS:      b.SentAt - 3600_000 + rng.Int64N(3700_000),
				Value:   v,
				Quality: Quality(rng.IntN(3)),
			})
		}
		data, err := encode(nil, &b)
		if err != nil {
			t.Fatalf("batch %d: AppendBatch: %v", n, err)
		}
		if err := DecodeBatch(data, &into); err != nil {
			t.Fatalf("batch %d: DecodeBatch: %v", n, err)
		}
		if diff := sameBatch(&into, &b); diff != "" {
			t.Fatalf("batch %d: %s", n, diff)
		}
		if raw := rawFromBatch(&b).bytes(); !bytes.Equal(raw, data) {
			t.Fatalf("batch %d: AppendBatch and the spec writer disagree:\n%x\n%x", n, data, raw)
		}
	}
}

func TestCause(t *testing.T) {
	for _, c := range causes {
		wrapped := fmt.Errorf("reading 3: %w", fmt.Errorf("cannot x: %w", c.err))
		if got := Cause(wrapped); got != c.name {
			t.Errorf("Cause(%v) = %q, want %q", wrapped, got, c.name)
		}
	}
	if got := Cause(errors.New("boom")); got != "other" {
		t.Errorf("Cause of a foreign error = %q, want other", got)
	}
	if got := Cause(nil); got != "other" {
		t.Errorf("Cause(nil) = %q, want other", got)
	}
	seen := map[string]bool{}
	for _, c := range causes {
		if seen[c.name] {
			t.Errorf("cause name %q is used twice", c.name)
		}
		seen[c.name] = true
	}
}

func TestCheckIDAndMetric(t *testing.T) {
	for _, id := range []string{"a", "gw-garden-1", "A_b-9", strings.Repeat("x", MaxIDLen)} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "a+", "#", "$SYS", "a b", "泵", "a.b", strings.Repeat("x", MaxIDLen+1)} {
		if err := CheckID(id); !errors.Is(err, ErrID) {
			t.Errorf("CheckID(%q) = %v, want ErrID", id, err)
		}
	}
	for _, m := range []string{"a", "energy_import_kwh", "phase1.voltage", "x9", strings.Repeat("m", MaxIDLen)} {
		if err := CheckMetric(m); err != nil {
			t.Errorf("CheckMetric(%q) = %v", m, err)
		}
	}
	for _, m := range []string{"", "Power", "_x", "1a", ".a", "a-b", "a b", "a/b", "温度", strings.Repeat("m", MaxIDLen+1)} {
		if err := CheckMetric(m); !errors.Is(err, ErrMetric) {
			t.Errorf("CheckMetric(%q) = %v, want ErrMetric", m, err)
		}
	}
}
