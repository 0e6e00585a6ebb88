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
	// Bring the bytes into big-endian order: words first, then the bytes
	// within each word.
	var buf [8]byte
	b := buf[:len(regs)]
	nw := len(regs) / 2
	for i := 0; i < nw; i++ {
		src := i
		if pt.WordOrder == "little" {
			src = nw - 1 - i
		}
		hi, lo := regs[2*src], regs[2*src+1]
		if pt.ByteOrder == "little" {
			hi, lo = lo, hi
		}
		b[2*i], b[2*i+1] = hi, lo
	}
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

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
