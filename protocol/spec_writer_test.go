package protocol

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// rawBatch is the telemetry batch layout field by field, written straight
// from README.md without AppendBatch's checks, so tests can build payloads
// with exactly one fault.
type rawBatch struct {
	version, flags byte
	gateway        string
	epoch          uint64 // written after the gateway id unless version is 1
	epochBytes     []byte // when set, written instead of the epoch varint
	seq, sent      uint64
	seqBytes       []byte // when set, written instead of the seq varint
	devs, mets     []string
	count          *uint64 // when set, written instead of len(readings)
	readings       []rawReading
	trailing       []byte // written after the readings, before the checksum
}

type rawReading struct {
	dev, met uint64
	delta    int64
	quality  byte
	value    uint64 // float64 bits
}

// body is the payload without its checksum.
func (r rawBatch) body() []byte {
	b := []byte{r.version, r.flags}
	b = rawString(b, r.gateway)
	if r.epochBytes != nil {
		b = append(b, r.epochBytes...)
	} else if r.version != BatchVersionV1 {
		b = binary.AppendUvarint(b, r.epoch)
	}
	if r.seqBytes != nil {
		b = append(b, r.seqBytes...)
	} else {
		b = binary.AppendUvarint(b, r.seq)
	}
	b = binary.AppendUvarint(b, r.sent)
	for _, t := range [][]string{r.devs, r.mets} {
		b = binary.AppendUvarint(b, uint64(len(t)))
		for _, s := range t {
			b = rawString(b, s)
		}
	}
	n := uint64(len(r.readings))
	if r.count != nil {
		n = *r.count
	}
	b = binary.AppendUvarint(b, n)
	for _, rd := range r.readings {
		b = binary.AppendUvarint(b, rd.dev)
		b = binary.AppendUvarint(b, rd.met)
		b = binary.AppendVarint(b, rd.delta)
		b = append(b, rd.quality)
		b = binary.LittleEndian.AppendUint64(b, rd.value)
	}
	return append(b, r.trailing...)
}

// bytes is the whole payload with a correct checksum.
func (r rawBatch) bytes() []byte { return withCRC(r.body()) }

func withCRC(body []byte) []byte {
	out := append([]byte(nil), body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
}

func rawString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// rawFromBatch lays b out as the specification says: tables in first-use
// order, time deltas from the previous reading (the first from SentAt).
func rawFromBatch(b *Batch) rawBatch {
	r := rawBatch{version: 2, gateway: b.Gateway, epoch: b.Epoch, seq: b.Seq, sent: uint64(b.SentAt)}
	if b.Epoch == 0 {
		r.version = 1
	}
	index := func(t *[]string, s string) uint64 {
		for i, v := range *t {
			if v == s {
				return uint64(i)
			}
		}
		*t = append(*t, s)
		return uint64(len(*t) - 1)
	}
	prev := b.SentAt
	for _, rd := range b.Readings {
		r.readings = append(r.readings, rawReading{
			dev: index(&r.devs, rd.Device), met: index(&r.mets, rd.Metric),
			delta: rd.TS - prev, quality: byte(rd.Quality), value: math.Float64bits(rd.Value),
		})
		prev = rd.TS
	}
	return r
}

// testSent is the send time of the test batches: 2026-03-14T08:00:05Z.
const testSent = 1773475205000

// testEpoch is the epoch of the test batches (a two-byte uvarint).
const testEpoch = 1234

// validRaw is a small valid batch: two devices, two metrics, three readings
// (the third 2 s earlier than the second).
func validRaw() rawBatch {
	return rawBatch{
		version: 2, gateway: "gw-1", epoch: testEpoch, seq: 7, sent: testSent,
		devs: []string{"pump-1", "meter-1"},
		mets: []string{"power_w", "energy_kwh"},
		readings: []rawReading{
			{dev: 0, met: 0, delta: -5000, value: math.Float64bits(1500)},
			{dev: 1, met: 1, delta: 0, quality: 1, value: math.Float64bits(12.5)},
			{dev: 0, met: 1, delta: -2000, quality: 2, value: math.Float64bits(-3)},
		},
	}
}

// validBatch is validRaw decoded.
func validBatch() Batch {
	return Batch{Gateway: "gw-1", Epoch: testEpoch, Seq: 7, SentAt: testSent, Readings: []Reading{
		{"pump-1", "power_w", testSent - 5000, 1500, QualityGood},
		{"meter-1", "energy_kwh", testSent - 5000, 12.5, QualityUncertain},
		{"pump-1", "energy_kwh", testSent - 7000, -3, QualityBad},
	}}
}

func u64(v uint64) *uint64 { return &v }
