package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/plantroom/plantroom/config"
)

// Sentinel errors of decoding; every decoding error wraps one.
var (
	// ErrInvalidValue: the registers hold NaN or ±Inf (a float point), or
	// scale and offset push the value out of the finite range.
	ErrInvalidValue = errors.New("invalid value")
	// ErrOutOfRange: a point reads a value outside its template's min/max
	// (a counter below 0). The reading is kept with bad quality.
	ErrOutOfRange = errors.New("value out of range")
	// ErrDecode: the answer is too short for the point, or the point's type
	// is unknown.
	ErrDecode = errors.New("cannot decode point")
)

// decodePoint returns the value of template point pt from the payload of
// request r's answer (register bytes big-endian as on the wire, or packed
// bits for coils and discrete inputs): raw value in the point's type, byte
// order and word order, times scale, plus offset.
func decodePoint(pt *config.Point, r *Request, data []byte) (float64, error) {
	off := int(pt.Address) - int(r.Address)
	if r.bits() {
		if off < 0 || off/8 >= len(data) {
			return 0, fmt.Errorf("%w %q: bit %d is outside the answer", ErrDecode, pt.Metric, pt.Address)
		}
		return b2f(data[off/8]&(1<<(off%8)) != 0), nil
	}
	n := config.TypeRegisters[pt.Type]
	if n == 0 {
		return 0, fmt.Errorf("%w %q: unknown type %q", ErrDecode, pt.Metric, pt.Type)
	}
	if off < 0 || 2*(off+n) > len(data) {
		return 0, fmt.Errorf("%w %q: registers %d+%d are outside the answer", ErrDecode, pt.Metric, pt.Address, n)
	}
	return decodeRegisters(pt, data[2*off:2*(off+n)])
}

// decodeRegisters decodes a point from exactly its registers' bytes.
func decodeRegisters(pt *config.Point, regs []byte) (float64, error) {
	if pt.Type == "bool" {
		w := binary.BigEndian.Uint16(regs)
		if pt.Bit != nil {
			return b2f(w&(1<<uint(*pt.Bit)) != 0), nil
		}
		return b2f(w != 0), nil
	}
	var buf [8]byte
	b := buf[:len(regs)]
	reorder(pt, b, regs)
	var raw float64
	switch pt.Type {
	case "int16":
		raw = float64(int16(binary.BigEndian.Uint16(b)))
	case "uint16":
		raw = float64(binary.BigEndian.Uint16(b))
	case "int32":
		raw = float64(int32(binary.BigEndian.Uint32(b)))
	case "uint32":
		raw = float64(binary.BigEndian.Uint32(b))
	case "float32":
		raw = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
	case "float64":
		raw = math.Float64frombits(binary.BigEndian.Uint64(b))
	default:
		return 0, fmt.Errorf("%w %q: unknown type %q", ErrDecode, pt.Metric, pt.Type)
	}
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 0, fmt.Errorf("%w: %q reads %v", ErrInvalidValue, pt.Metric, raw)
	}
	v := raw*config.EffectiveScale(pt.Scale) + pt.Offset
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q = %v × %v + %v is not finite", ErrInvalidValue, pt.Metric, raw, config.EffectiveScale(pt.Scale), pt.Offset)
	}
	return v, nil
}

// reorder copies a point's register bytes from src to dst, bringing them
// from the point's word and byte order into big-endian order. Reversing the
// words and swapping the bytes of each word are their own inverses, so the
// same copy brings big-endian bytes into the point's order for a write.
func reorder(pt *config.Point, dst, src []byte) {
	nw := len(src) / 2
	for i := 0; i < nw; i++ {
		from := i
		if pt.WordOrder == "little" {
			from = nw - 1 - i
		}
		hi, lo := src[2*from], src[2*from+1]
		if pt.ByteOrder == "little" {
			hi, lo = lo, hi
		}
		dst[2*i], dst[2*i+1] = hi, lo
	}
}

// encodeRegisters is decodeRegisters' inverse: the register bytes (as on the
// wire) that decode to v, i.e. (v − offset) / scale in the point's type,
// rounded to an integer for integer types, in the point's byte and word
// order. A value the type cannot hold is ErrInvalidValue.
func encodeRegisters(pt *config.Point, v float64) ([]byte, error) {
	n := config.TypeRegisters[pt.Type]
	if n == 0 || pt.Type == "bool" && pt.Bit != nil {
		return nil, fmt.Errorf("%w %q: type %q cannot be written", ErrDecode, pt.Metric, pt.Type)
	}
	raw := (v - pt.Offset) / config.EffectiveScale(pt.Scale)
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return nil, fmt.Errorf("%w: %q = (%v − %v) / %v is not finite", ErrInvalidValue, pt.Metric, v, pt.Offset, config.EffectiveScale(pt.Scale))
	}
	limits := map[string][2]float64{
		"bool": {0, 1}, "int16": {math.MinInt16, math.MaxInt16}, "uint16": {0, math.MaxUint16},
		"int32": {math.MinInt32, math.MaxInt32}, "uint32": {0, math.MaxUint32},
	}
	if lim, ok := limits[pt.Type]; ok {
		raw = math.Round(raw)
		if raw < lim[0] || raw > lim[1] {
			return nil, fmt.Errorf("%w: %q = %v does not fit a %s register", ErrInvalidValue, pt.Metric, raw, pt.Type)
		}
	}
	be := make([]byte, 2*n)
	switch pt.Type {
	case "bool", "uint16":
		binary.BigEndian.PutUint16(be, uint16(raw))
	case "int16":
		binary.BigEndian.PutUint16(be, uint16(int16(raw)))
	case "int32":
		binary.BigEndian.PutUint32(be, uint32(int32(raw)))
	case "uint32":
		binary.BigEndian.PutUint32(be, uint32(raw))
	case "float32":
		if math.Abs(raw) > math.MaxFloat32 {
			return nil, fmt.Errorf("%w: %q = %v does not fit a float32", ErrInvalidValue, pt.Metric, raw)
		}
		binary.BigEndian.PutUint32(be, math.Float32bits(float32(raw)))
	case "float64":
		binary.BigEndian.PutUint64(be, math.Float64bits(raw))
	}
	out := make([]byte, len(be))
	reorder(pt, out, be)
	return out, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
