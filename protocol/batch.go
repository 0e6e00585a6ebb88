package protocol

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// BatchVersion is the version byte of the telemetry batch encoding that
// AppendBatch writes. BatchVersionV1 is the layout of protocol version 1
// (no epoch), which DecodeBatch still reads during a migration window.
const (
	BatchVersion   = 2
	BatchVersionV1 = 1
)

// MaxEpoch is the largest epoch; epoch 0 marks a version-1 batch.
const MaxEpoch = math.MaxInt64

// NewEpoch returns a random epoch in 1 … MaxEpoch (crypto/rand), for a
// gateway whose queue is created: a new seq space no other queue shares.
func NewEpoch() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return max(binary.LittleEndian.Uint64(b[:])>>1, 1)
}

// Limits of one telemetry batch. A receiver rejects anything larger.
const (
	MaxBatchReadings = 10000     // readings in one batch
	MaxBatchBytes    = 512 << 10 // encoded payload size
)

// MinTimestamp is the earliest accepted reading time (2000-01-01T00:00:00Z,
// in ms): older values come from devices whose clock was never set.
const MinTimestamp int64 = 946684800000

// Quality qualifies a reading's value.
type Quality uint8

// Quality values. Anything above QualityBad is rejected.
const (
	QualityGood      Quality = 0 // measured by the device
	QualityUncertain Quality = 1 // estimated, substituted or from a device reporting a warning
	QualityBad       Quality = 2 // known to be wrong but kept for diagnosis; excluded from reports
)

// Reading is one value of one metric of one device at one time.
type Reading struct {
	Device  string  // device id, see CheckID
	Metric  string  // metric name, see CheckMetric
	TS      int64   // Unix time in milliseconds
	Value   float64 // finite
	Quality Quality
}

// Batch is one telemetry message: the readings a gateway sends at once.
// Epoch is a random id the gateway picked when its queue was created; Seq is
// strictly increasing within an epoch and survives gateway restarts, so
// (Gateway, Epoch, Seq) identifies a batch and a receiver can spot
// redeliveries. Epoch 0 marks a version-1 batch (no epoch on the wire).
type Batch struct {
	Gateway  string
	Epoch    uint64 // 1 … MaxEpoch; 0 only in a decoded version-1 batch
	Seq      uint64
	SentAt   int64 // Unix ms at which the gateway built the batch
	Readings []Reading
	// CRC is set by DecodeBatch: the payload's CRC-32C, which identifies
	// the batch's content under its (Epoch, Seq). AppendBatch ignores it.
	CRC uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendBatch appends the version-2 encoding of b to dst. It checks ids,
// the epoch, metric names, values and sizes, so what it produces always
// decodes.
func AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	if b.Epoch == 0 || b.Epoch > MaxEpoch {
		return dst, fmt.Errorf("cannot encode batch: %w: %d (want 1 … %d)", ErrEpoch, b.Epoch, uint64(MaxEpoch))
	}
	return appendBatch(dst, b, BatchVersion)
}

// AppendBatchV1 appends the version-1 encoding of b (no epoch; b.Epoch must
// be 0). Only tests and simulators of old gateways need it.
func AppendBatchV1(dst []byte, b *Batch) ([]byte, error) {
	if b.Epoch != 0 {
		return dst, fmt.Errorf("cannot encode batch: %w: a version-1 batch has no epoch, got %d", ErrEpoch, b.Epoch)
	}
	return appendBatch(dst, b, BatchVersionV1)
}

func appendBatch(dst []byte, b *Batch, version byte) ([]byte, error) {
	if err := CheckID(b.Gateway); err != nil {
		return dst, fmt.Errorf("cannot encode batch: gateway: %w", err)
	}
	if len(b.Readings) == 0 {
		return dst, fmt.Errorf("cannot encode batch: %w", ErrEmpty)
	}
	if len(b.Readings) > MaxBatchReadings {
		return dst, fmt.Errorf("cannot encode batch: %w: %d readings (max %d)", ErrTooLarge, len(b.Readings), MaxBatchReadings)
	}
	if b.SentAt < 0 {
		return dst, fmt.Errorf("cannot encode batch: %w: send time %d is negative", ErrTimestamp, b.SentAt)
	}
	start := len(dst)
	dst = append(dst, version, 0)
	dst = appendString(dst, b.Gateway)
	if version != BatchVersionV1 {
		dst = binary.AppendUvarint(dst, b.Epoch)
	}
	dst = binary.AppendUvarint(dst, b.Seq)
	dst = binary.AppendUvarint(dst, uint64(b.SentAt))

	// Tables of distinct device ids and metric names, in first-use order.
	devIdx := make(map[string]uint32, 8)
	metIdx := make(map[string]uint32, 32)
	var devs, mets []string
	idx := make([]uint32, 0, 2*len(b.Readings))
	for i := range b.Readings {
		r := &b.Readings[i]
		d, ok := devIdx[r.Device]
		if !ok {
			if err := CheckID(r.Device); err != nil {
				return dst[:start], fmt.Errorf("cannot encode batch: reading %d: device: %w", i, err)
			}
			d = uint32(len(devs))
			devIdx[r.Device] = d
			devs = append(devs, r.Device)
		}
		m, ok := metIdx[r.Metric]
		if !ok {
			if err := CheckMetric(r.Metric); err != nil {
				return dst[:start], fmt.Errorf("cannot encode batch: reading %d: %w", i, err)
			}
			m = uint32(len(mets))
			metIdx[r.Metric] = m
			mets = append(mets, r.Metric)
		}
		if err := checkValue(r); err != nil {
			return dst[:start], fmt.Errorf("cannot encode batch: reading %d: %w", i, err)
		}
		idx = append(idx, d, m)
	}
	dst = appendTable(dst, devs)
	dst = appendTable(dst, mets)
	dst = binary.AppendUvarint(dst, uint64(len(b.Readings)))
	prev := b.SentAt
	for i := range b.Readings {
		r := &b.Readings[i]
		dst = binary.AppendUvarint(dst, uint64(idx[2*i]))
		dst = binary.AppendUvarint(dst, uint64(idx[2*i+1]))
		dst = binary.AppendVarint(dst, r.TS-prev)
		prev = r.TS
		dst = append(dst, byte(r.Quality))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Value))
	}
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	if n := len(dst) - start; n > MaxBatchBytes {
		return dst[:start], fmt.Errorf("cannot encode batch: %w: %d bytes (max %d)", ErrTooLarge, n, MaxBatchBytes)
	}
	return dst, nil
}

// DecodeBatch decodes data into b, reusing b.Readings' storage. It reads
// version 2 and version 1 (Epoch 0). It rejects anything that AppendBatch
// (or AppendBatchV1) would not produce: unknown version, epoch 0, wrong checksum,
// truncation, trailing bytes, varints not in their shortest form, bad ids or
// metric names, table entries unused, repeated or not in first-use order,
// NaN/Inf values, unknown quality, and timestamps before MinTimestamp. Use
// Validate for the time-dependent checks. On error b's fields keep their
// values, but the elements of b.Readings may have been overwritten.
func DecodeBatch(data []byte, b *Batch) error {
	if len(data) > MaxBatchBytes {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(data), MaxBatchBytes)
	}
	if len(data) < 2+4 {
		return fmt.Errorf("%w: %d bytes", ErrTruncated, len(data))
	}
	version := data[0]
	if version != BatchVersion && version != BatchVersionV1 {
		return fmt.Errorf("%w: %d (this receiver speaks %d and %d)", ErrVersion, version, BatchVersion, BatchVersionV1)
	}
	if data[1] != 0 {
		return fmt.Errorf("%w: flags byte is %#x, must be 0", ErrVersion, data[1])
	}
	body := data[:len(data)-4]
	if want, got := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(body, castagnoli); want != got {
		return fmt.Errorf("%w: payload says %#08x, computed %#08x", ErrChecksum, want, got)
	}
	d := decoder{buf: body, off: 2}
	gw := d.string()
	var epoch uint64
	if version != BatchVersionV1 {
		epoch = d.uvarint()
	}
	seq := d.uvarint()
	sent := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if err := CheckID(gw); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if version != BatchVersionV1 && (epoch == 0 || epoch > MaxEpoch) {
		return fmt.Errorf("%w: %d (want 1 … %d)", ErrEpoch, epoch, uint64(MaxEpoch))
	}
	if sent > math.MaxInt64 {
		return fmt.Errorf("%w: send time %d out of range", ErrTimestamp, sent)
	}
	devs, err := d.table("device", CheckID)
	if err != nil {
		return err
	}
	mets, err := d.table("metric", CheckMetric)
	if err != nil {
		return err
	}
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n == 0 {
		return ErrEmpty
	}
	if n > MaxBatchReadings {
		return fmt.Errorf("%w: %d readings (max %d)", ErrTooLarge, n, MaxBatchReadings)
	}
	// Refuse counts the payload cannot hold.
	if rem := uint64(len(d.buf) - d.off); n > rem/minReadingBytes {
		return fmt.Errorf("%w: %d readings announced, %d bytes left", ErrTruncated, n, rem)
	}
	rs := b.Readings[:0]
	if cap(rs) < int(n) {
		rs = make([]Reading, 0, n)
	}
	// Tables list their entries in first-use order, so a reading refers to
	// an entry already used or to the next one.
	var nDev, nMet uint64
	ts := int64(sent)
	for i := 0; i < int(n); i++ {
		di, mi := d.uvarint(), d.uvarint()
		delta := d.varint()
		if d.err != nil {
			return fmt.Errorf("reading %d: %w", i, d.err)
		}
		if len(d.buf)-d.off < 9 {
			return fmt.Errorf("reading %d: %w", i, ErrTruncated)
		}
		q := Quality(d.buf[d.off])
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.off+1:]))
		d.off += 9
		if di >= uint64(len(devs)) || mi >= uint64(len(mets)) {
			return fmt.Errorf("reading %d: %w: device %d of %d, metric %d of %d", i, ErrIndex, di, len(devs), mi, len(mets))
		}
		if di > nDev {
			return fmt.Errorf("reading %d: %w: device table entry %d is used before entry %d (tables are in first-use order)", i, ErrIndex, di, nDev)
		}
		if mi > nMet {
			return fmt.Errorf("reading %d: %w: metric table entry %d is used before entry %d (tables are in first-use order)", i, ErrIndex, mi, nMet)
		}
		if di == nDev {
			nDev++
		}
		if mi == nMet {
			nMet++
		}
		next := ts + delta
		if (delta > 0 && next < ts) || (delta < 0 && next > ts) {
			return fmt.Errorf("reading %d: %w: overflow", i, ErrTimestamp)
		}
		ts = next
		rs = append(rs, Reading{Device: devs[di], Metric: mets[mi], TS: ts, Value: v, Quality: q})
		if err := checkValue(&rs[i]); err != nil {
			return fmt.Errorf("reading %d: %w", i, err)
		}
	}
	if d.off != len(d.buf) {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, len(d.buf)-d.off)
	}
	if nDev < uint64(len(devs)) {
		return fmt.Errorf("%w: device table entry %d (%q) is never used", ErrIndex, nDev, devs[nDev])
	}
	if nMet < uint64(len(mets)) {
		return fmt.Errorf("%w: metric table entry %d (%q) is never used", ErrIndex, nMet, mets[nMet])
	}
	b.Gateway, b.Epoch, b.Seq, b.SentAt, b.Readings = gw, epoch, seq, int64(sent), rs
	b.CRC = binary.LittleEndian.Uint32(data[len(data)-4:])
	return nil
}

// Validate applies the checks that depend on the receiver's clock: no reading
// may lie more than maxSkew after now. It returns the first offending reading.
func (b *Batch) Validate(now time.Time, maxSkew time.Duration) error {
	limit := now.Add(maxSkew).UnixMilli()
	for i := range b.Readings {
		if ts := b.Readings[i].TS; ts > limit {
			return fmt.Errorf("reading %d (%s/%s): %w: %s is more than %s in the future",
				i, b.Readings[i].Device, b.Readings[i].Metric, ErrTimestamp,
				time.UnixMilli(ts).UTC().Format(time.RFC3339), maxSkew)
		}
	}
	return nil
}

func checkValue(r *Reading) error {
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return fmt.Errorf("%w: %v for %s/%s", ErrValue, r.Value, r.Device, r.Metric)
	}
	if r.Quality > QualityBad {
		return fmt.Errorf("%w: %d for %s/%s", ErrQuality, r.Quality, r.Device, r.Metric)
	}
	if r.TS < MinTimestamp {
		return fmt.Errorf("%w: %d ms for %s/%s is before 2000-01-01", ErrTimestamp, r.TS, r.Device, r.Metric)
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTable(dst []byte, t []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(t)))
	for _, s := range t {
		dst = appendString(dst, s)
	}
	return dst
}

type decoder struct {
	buf []byte
	off int
	err error
}

// minReadingBytes is the size of the shortest encoded reading: three
// one-byte varints, the quality byte and the value.
const minReadingBytes = 3 + 1 + 8

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if !d.checkVarint(n) {
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if !d.checkVarint(n) {
		return 0
	}
	d.off += n
	return v
}

// checkVarint checks the length n returned by binary.Uvarint or
// binary.Varint at d.off: the payload must not end inside the varint, its
// value must fit 64 bits, and it must be in its shortest form (a last byte
// of zero adds nothing), so every value has exactly one encoding.
func (d *decoder) checkVarint(n int) bool {
	switch {
	case n == 0:
		d.err = fmt.Errorf("%w: payload ends inside the varint at offset %d", ErrTruncated, d.off)
	case n < 0:
		d.err = fmt.Errorf("%w: varint at offset %d overflows 64 bits", ErrMalformed, d.off)
	case n > 1 && d.buf[d.off+n-1] == 0:
		d.err = fmt.Errorf("%w: varint at offset %d is not in its shortest form", ErrMalformed, d.off)
	default:
		return true
	}
	return false
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)-d.off) {
		d.err = fmt.Errorf("%w: string of %d bytes at offset %d", ErrTruncated, n, d.off)
		return ""
	}
	s := string(d.buf[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

func (d *decoder) table(what string, check func(string) error) ([]string, error) {
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	// Every entry takes at least two bytes (length and one character).
	if n > uint64(len(d.buf)-d.off)/2 {
		return nil, fmt.Errorf("%w: %s table of %d entries", ErrTruncated, what, n)
	}
	t := make([]string, n)
	seen := make(map[string]struct{}, n)
	for i := range t {
		t[i] = d.string()
		if d.err != nil {
			return nil, d.err
		}
		if err := check(t[i]); err != nil {
			return nil, fmt.Errorf("%s table entry %d: %w", what, i, err)
		}
		if _, dup := seen[t[i]]; dup {
			return nil, fmt.Errorf("%w: %s %q appears twice in its table", ErrIndex, what, t[i])
		}
		seen[t[i]] = struct{}{}
	}
	return t, nil
}
