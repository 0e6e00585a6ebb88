package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/plantroom/plantroom/protocol"
)

// An item value is
//
//	[0:8]   append time, Unix ms, big-endian
//	[8:12]  number of readings, big-endian
//	[12:16] CRC-32C of the rest
//	[16:]   the readings, each: flags (bit 0: a device id follows),
//	        [uvarint length, device id], uvarint length, metric name,
//	        varint TS − append time, quality byte, float64 little-endian
//
// The device id is written only when it changes, so one device's poll
// carries it once. Items are checked against the protocol rules when they
// are encoded, so every stored item forms a valid batch; the checksum guards
// against a damaged file.
const itemHeaderLen = 16

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("corrupt queue item")

// encodeItem checks rs against the protocol rules and encodes them.
func encodeItem(appendMs int64, rs []protocol.Reading) ([]byte, error) {
	if len(rs) > protocol.MaxBatchReadings {
		return nil, fmt.Errorf("%w: %d readings in one add (max %d)", protocol.ErrTooLarge, len(rs), protocol.MaxBatchReadings)
	}
	buf := make([]byte, itemHeaderLen, itemHeaderLen+24+26*len(rs))
	binary.BigEndian.PutUint64(buf, uint64(appendMs))
	binary.BigEndian.PutUint32(buf[8:], uint32(len(rs)))
	dev, metric := "", ""
	for i := range rs {
		r := &rs[i]
		if err := checkReading(r, r.Device != dev, r.Metric != metric); err != nil {
			return nil, fmt.Errorf("reading %d: %w", i, err)
		}
		if i == 0 || r.Device != dev {
			dev = r.Device
			buf = append(buf, 1)
			buf = binary.AppendUvarint(buf, uint64(len(dev)))
			buf = append(buf, dev...)
		} else {
			buf = append(buf, 0)
		}
		metric = r.Metric
		buf = binary.AppendUvarint(buf, uint64(len(metric)))
		buf = append(buf, metric...)
		buf = binary.AppendVarint(buf, r.TS-appendMs)
		buf = append(buf, byte(r.Quality))
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(r.Value))
	}
	binary.BigEndian.PutUint32(buf[12:], crc32.Checksum(buf[itemHeaderLen:], crcTable))
	return buf, nil
}

// checkReading applies protocol.AppendBatch's checks to one reading; ids
// are checked only when they differ from the previous reading's.
func checkReading(r *protocol.Reading, newDevice, newMetric bool) error {
	if newDevice {
		if err := protocol.CheckID(r.Device); err != nil {
			return fmt.Errorf("device: %w", err)
		}
	}
	if newMetric {
		if err := protocol.CheckMetric(r.Metric); err != nil {
			return err
		}
	}
	switch {
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return fmt.Errorf("%w: %v for %s/%s", protocol.ErrValue, r.Value, r.Device, r.Metric)
	case r.Quality > protocol.QualityBad:
		return fmt.Errorf("%w: %d for %s/%s", protocol.ErrQuality, r.Quality, r.Device, r.Metric)
	case r.TS < protocol.MinTimestamp:
		return fmt.Errorf("%w: %d ms for %s/%s is before 2000-01-01", protocol.ErrTimestamp, r.TS, r.Device, r.Metric)
	}
	return nil
}

// itemHeader returns an item's append time and reading count.
func itemHeader(v []byte) (int64, int) {
	if len(v) < itemHeaderLen {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int(binary.BigEndian.Uint32(v[8:]))
}

// checkItem verifies an item's checksum.
func checkItem(v []byte) error {
	if len(v) < itemHeaderLen {
		return fmt.Errorf("%w: %d bytes", errCorrupt, len(v))
	}
	if want, got := binary.BigEndian.Uint32(v[12:]), crc32.Checksum(v[itemHeaderLen:], crcTable); want != got {
		return fmt.Errorf("%w: checksum %#08x, computed %#08x", errCorrupt, want, got)
	}
	return nil
}

// itemDecoder turns items back into readings, sharing one string per
// distinct device id and metric name.
type itemDecoder struct {
	names map[string]string
}

func (d *itemDecoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil {
		d.names = make(map[string]string, 64)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// decode appends the item's readings to rs. The item's checksum must have
// been checked.
func (d *itemDecoder) decode(v []byte, rs []protocol.Reading) ([]protocol.Reading, error) {
	appendMs, n := itemHeader(v)
	p := v[itemHeaderLen:]
	str := func() ([]byte, bool) {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, false
		}
		s := p[k : k+int(l)]
		p = p[k+int(l):]
		return s, true
	}
	dev := ""
	for i := 0; i < n; i++ {
		if len(p) == 0 {
			return rs, fmt.Errorf("%w: reading %d of %d missing", errCorrupt, i, n)
		}
		flags := p[0]
		p = p[1:]
		if flags&1 != 0 {
			b, ok := str()
			if !ok {
				return rs, fmt.Errorf("%w: reading %d: bad device id", errCorrupt, i)
			}
			dev = d.intern(b)
		}
		m, ok := str()
		if !ok {
			return rs, fmt.Errorf("%w: reading %d: bad metric", errCorrupt, i)
		}
		delta, k := binary.Varint(p)
		if k <= 0 || len(p)-k < 9 {
			return rs, fmt.Errorf("%w: reading %d truncated", errCorrupt, i)
		}
		p = p[k:]
		rs = append(rs, protocol.Reading{
			Device:  dev,
			Metric:  d.intern(m),
			TS:      appendMs + delta,
			Quality: protocol.Quality(p[0]),
			Value:   math.Float64frombits(binary.LittleEndian.Uint64(p[1:])),
		})
		p = p[9:]
	}
	if len(p) != 0 {
		return rs, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(p))
	}
	return rs, nil
}
