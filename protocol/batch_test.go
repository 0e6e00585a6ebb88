package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDecodeBatchValid(t *testing.T) {
	var b Batch
	if err := DecodeBatch(validRaw().bytes(), &b); err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	want := validBatch()
	if diff := sameBatch(&b, &want); diff != "" {
		t.Fatal(diff)
	}
}

// TestDecodeBatchRejects builds payloads that are valid but for one fault
// and checks the sentinel each is rejected with.
func TestDecodeBatchRejects(t *testing.T) {
	nan := math.Float64bits(math.NaN())
	cases := []struct {
		name  string
		edit  func(r *rawBatch)
		raw   func() []byte // instead of edit: the whole payload
		want  error
		cause string
	}{
		{name: "unknown version", edit: func(r *rawBatch) { r.version = 3 }, want: ErrVersion, cause: "version"},
		{name: "epoch zero", edit: func(r *rawBatch) { r.epoch = 0 }, want: ErrEpoch, cause: "epoch"},
		{name: "epoch above 2^63-1", edit: func(r *rawBatch) { r.epoch = 1 << 63 }, want: ErrEpoch, cause: "epoch"},
		{name: "epoch not in shortest form", edit: func(r *rawBatch) { r.epochBytes = []byte{0x81, 0x00} }, want: ErrMalformed, cause: "malformed"},
		{name: "payload ends inside the epoch", raw: func() []byte {
			return withCRC(append(rawString([]byte{2, 0}, "gw-1"), 0x81))
		}, want: ErrTruncated, cause: "truncated"},
		{name: "version zero", edit: func(r *rawBatch) { r.version = 0 }, want: ErrVersion, cause: "version"},
		{name: "non-zero flags", edit: func(r *rawBatch) { r.flags = 0x01 }, want: ErrVersion, cause: "version"},
		{name: "bad checksum", raw: func() []byte {
			p := validRaw().bytes()
			p[len(p)-1] ^= 0x80
			return p
		}, want: ErrChecksum, cause: "checksum"},
		{name: "flipped value bit", raw: func() []byte {
			p := validRaw().bytes()
			p[len(p)-6] ^= 0x01
			return p
		}, want: ErrChecksum, cause: "checksum"},
		{name: "shorter than header and checksum", raw: func() []byte { return []byte{1, 0, 0, 0, 0} }, want: ErrTruncated, cause: "truncated"},
		{name: "empty payload", raw: func() []byte { return nil }, want: ErrTruncated, cause: "truncated"},
		{name: "trailing bytes", edit: func(r *rawBatch) { r.trailing = []byte{0} }, want: ErrTrailing, cause: "trailing"},
		{name: "empty batch", edit: func(r *rawBatch) { r.devs, r.mets, r.readings = nil, nil, nil }, want: ErrEmpty, cause: "empty"},
		{name: "empty batch with tables", edit: func(r *rawBatch) { r.readings = nil }, want: ErrEmpty, cause: "empty"},
		{name: "too many readings", edit: func(r *rawBatch) {
			r.readings = make([]rawReading, MaxBatchReadings+1)
			for i := range r.readings {
				r.readings[i] = rawReading{dev: 0, met: 0, value: math.Float64bits(1)}
			}
			r.readings[0].delta = -1000
			r.readings[1] = rawReading{dev: 1, met: 1}
		}, want: ErrTooLarge, cause: "too_large"},
		{name: "too many bytes", edit: func(r *rawBatch) { r.trailing = make([]byte, MaxBatchBytes) }, want: ErrTooLarge, cause: "too_large"},
		{name: "count beyond payload", edit: func(r *rawBatch) { r.count = u64(4) }, want: ErrTruncated, cause: "truncated"},
		{name: "huge count", edit: func(r *rawBatch) { r.count = u64(math.MaxUint64) }, want: ErrTooLarge, cause: "too_large"},
		{name: "gateway id with slash", edit: func(r *rawBatch) { r.gateway = "gw/1" }, want: ErrID, cause: "id"},
		{name: "empty gateway id", edit: func(r *rawBatch) { r.gateway = "" }, want: ErrID, cause: "id"},
		{name: "gateway id too long", edit: func(r *rawBatch) { r.gateway = strings.Repeat("g", MaxIDLen+1) }, want: ErrID, cause: "id"},
		{name: "device id with space", edit: func(r *rawBatch) { r.devs[1] = "meter 1" }, want: ErrID, cause: "id"},
		{name: "device id with wildcard", edit: func(r *rawBatch) { r.devs[0] = "pump+" }, want: ErrID, cause: "id"},
		{name: "metric upper case", edit: func(r *rawBatch) { r.mets[0] = "Power_w" }, want: ErrMetric, cause: "metric"},
		{name: "metric starting with digit", edit: func(r *rawBatch) { r.mets[1] = "1_energy" }, want: ErrMetric, cause: "metric"},
		{name: "empty metric", edit: func(r *rawBatch) { r.mets[1] = "" }, want: ErrMetric, cause: "metric"},
		{name: "unused device entry", edit: func(r *rawBatch) { r.devs = append(r.devs, "spare-1") }, want: ErrIndex, cause: "index"},
		{name: "unused metric entry", edit: func(r *rawBatch) { r.mets = append(r.mets, "spare") }, want: ErrIndex, cause: "index"},
		{name: "duplicate device entry", edit: func(r *rawBatch) { r.devs[1] = "pump-1" }, want: ErrIndex, cause: "index"},
		{name: "duplicate metric entry", edit: func(r *rawBatch) { r.mets[1] = "power_w" }, want: ErrIndex, cause: "index"},
		{name: "device index out of range", edit: func(r *rawBatch) { r.readings[2].dev = 2 }, want: ErrIndex, cause: "index"},
		{name: "metric index out of range", edit: func(r *rawBatch) { r.readings[1].met = 200 }, want: ErrIndex, cause: "index"},
		{name: "device table not in first-use order", edit: func(r *rawBatch) {
			r.devs[0], r.devs[1] = r.devs[1], r.devs[0]
			r.readings[0].dev, r.readings[1].dev, r.readings[2].dev = 1, 0, 1
		}, want: ErrIndex, cause: "index"},
		{name: "metric table not in first-use order", edit: func(r *rawBatch) { r.readings[0].met = 1 }, want: ErrIndex, cause: "index"},
		{name: "NaN", edit: func(r *rawBatch) { r.readings[1].value = nan }, want: ErrValue, cause: "value"},
		{name: "NaN with payload bits", edit: func(r *rawBatch) { r.readings[1].value = 0x7ff0000000000001 }, want: ErrValue, cause: "value"},
		{name: "+Inf", edit: func(r *rawBatch) { r.readings[0].value = math.Float64bits(math.Inf(1)) }, want: ErrValue, cause: "value"},
		{name: "-Inf", edit: func(r *rawBatch) { r.readings[2].value = math.Float64bits(math.Inf(-1)) }, want: ErrValue, cause: "value"},
		{name: "quality 3", edit: func(r *rawBatch) { r.readings[0].quality = 3 }, want: ErrQuality, cause: "quality"},
		{name: "quality 255", edit: func(r *rawBatch) { r.readings[2].quality = 255 }, want: ErrQuality, cause: "quality"},
		{name: "timestamp before MinTimestamp", edit: func(r *rawBatch) {
			r.readings[1].delta = MinTimestamp - 1 - (testSent - 5000)
		}, want: ErrTimestamp, cause: "timestamp"},
		{name: "timestamp zero", edit: func(r *rawBatch) { r.sent, r.readings[0].delta = 5000, -5000 }, want: ErrTimestamp, cause: "timestamp"},
		{name: "timestamp overflow", edit: func(r *rawBatch) {
			r.sent, r.readings[0].delta = math.MaxInt64, 0
			r.readings[1].delta = 1
		}, want: ErrTimestamp, cause: "timestamp"},
		{name: "send time beyond int64", edit: func(r *rawBatch) { r.sent = math.MaxInt64 + 1 }, want: ErrTimestamp, cause: "timestamp"},
		{name: "varint longer than 64 bits", edit: func(r *rawBatch) {
			r.seqBytes = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
		}, want: ErrMalformed, cause: "malformed"},
		{name: "varint not in shortest form", edit: func(r *rawBatch) { r.seqBytes = []byte{0x87, 0x00} }, want: ErrMalformed, cause: "malformed"},
		{name: "string longer than payload", raw: func() []byte {
			return withCRC([]byte{1, 0, 0x7f, 'g', 'w'})
		}, want: ErrTruncated, cause: "truncated"},
		{name: "table longer than payload", raw: func() []byte {
			b := rawString([]byte{1, 0}, "gw-1")
			b = binary.AppendUvarint(append(b, 7), testSent)
			return withCRC(append(b, 0x50, 1, 'a'))
		}, want: ErrTruncated, cause: "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var payload []byte
			if c.raw != nil {
				payload = c.raw()
			} else {
				r := validRaw()
				c.edit(&r)
				payload = r.bytes()
			}
			b := Batch{Gateway: "before", Seq: 1, SentAt: 2}
			err := DecodeBatch(payload, &b)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeBatch error = %v, want %v", err, c.want)
			}
			if got := Cause(err); got != c.cause {
				t.Errorf("Cause(%v) = %q, want %q", err, got, c.cause)
			}
			if b.Gateway != "before" || b.Seq != 1 || b.SentAt != 2 || b.Readings != nil {
				t.Errorf("a rejected payload changed the batch to %+v", b)
			}
		})
	}
}

// TestDecodeBatchBoundaries accepts the extreme values the rules allow.
func TestDecodeBatchBoundaries(t *testing.T) {
	r := validRaw()
	r.readings[2].delta = MinTimestamp - (testSent - 5000) // exactly MinTimestamp
	r.readings[0].value = math.Float64bits(math.MaxFloat64)
	r.readings[1].value = math.Float64bits(math.Copysign(0, -1))
	r.seq = math.MaxUint64
	r.gateway = strings.Repeat("G", MaxIDLen)
	var b Batch
	if err := DecodeBatch(r.bytes(), &b); err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if b.Readings[2].TS != MinTimestamp || b.Seq != math.MaxUint64 || !math.Signbit(b.Readings[1].Value) {
		t.Fatalf("decoded %+v", b)
	}
	enc, err := AppendBatch(nil, &b)
	if err != nil || !bytes.Equal(enc, r.bytes()) {
		t.Fatalf("re-encoding gives %x, %v; want %x", enc, err, r.bytes())
	}
}

// TestDecodeBatchTruncated cuts a valid payload at every offset. A cut
// payload fails its checksum (or is too short to have one); a cut body with
// a fresh checksum must be reported as truncated, wherever the cut falls.
func TestDecodeBatchTruncated(t *testing.T) {
	for _, g := range append(loadGoldenBatches(t), goldenBatch{"valid", validRaw().bytes(), validBatch()}) {
		for k := 0; k < len(g.data); k++ {
			var b Batch
			err := DecodeBatch(g.data[:k], &b)
			if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrTruncated) {
				t.Errorf("%s cut at %d: error %v, want checksum or truncated", g.name, k, err)
			}
		}
		body := g.data[:len(g.data)-4]
		for k := 0; k < len(body); k++ {
			var b Batch
			if err := DecodeBatch(withCRC(body[:k]), &b); !errors.Is(err, ErrTruncated) {
				t.Errorf("%s body cut at %d with its checksum: error %v, want truncated", g.name, k, err)
			}
		}
	}
}

func TestDecodeBatchReusesReadings(t *testing.T) {
	payload := validRaw().bytes()
	b := Batch{Readings: make([]Reading, 1, 8)}
	first := &b.Readings[:1][0]
	if err := DecodeBatch(payload, &b); err != nil {
		t.Fatal(err)
	}
	if &b.Readings[0] != first || cap(b.Readings) != 8 {
		t.Fatalf("DecodeBatch did not reuse the Readings storage (cap %d)", cap(b.Readings))
	}
	want := validBatch()
	if diff := sameBatch(&b, &want); diff != "" {
		t.Fatal(diff)
	}
	// Too small a slice is replaced, not overrun.
	small := Batch{Readings: make([]Reading, 0, 2)}
	if err := DecodeBatch(payload, &small); err != nil {
		t.Fatal(err)
	}
	if diff := sameBatch(&small, &want); diff != "" {
		t.Fatal(diff)
	}
	// A second decode into the same batch allocates no reading storage.
	if testing.Short() {
		return
	}
	big := makeBenchBatch(1000)
	data, err := AppendBatch(nil, &big)
	if err != nil {
		t.Fatal(err)
	}
	var into Batch
	reused := testing.AllocsPerRun(20, func() {
		if err := DecodeBatch(data, &into); err != nil {
			t.Fatal(err)
		}
	})
	fresh := testing.AllocsPerRun(20, func() {
		var b Batch
		if err := DecodeBatch(data, &b); err != nil {
			t.Fatal(err)
		}
	})
	if reused >= fresh {
		t.Fatalf("decoding into a used batch makes %v allocations, a fresh one %v", reused, fresh)
	}
}

func TestBatchValidate(t *testing.T) {
	now := time.UnixMilli(testSent)
	b := validBatch()
	if err := b.Validate(now, time.Minute); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	b.Readings[1].TS = now.Add(time.Minute).UnixMilli() // exactly at the limit
	if err := b.Validate(now, time.Minute); err != nil {
		t.Fatalf("Validate at the limit: %v", err)
	}
	b.Readings[1].TS++
	err := b.Validate(now, time.Minute)
	if !errors.Is(err, ErrTimestamp) || Cause(err) != "timestamp" {
		t.Fatalf("Validate of a reading 1 ms past the skew: %v", err)
	}
	if !strings.Contains(err.Error(), "reading 1 (meter-1/energy_kwh)") {
		t.Errorf("error %q does not name the reading", err)
	}
}
