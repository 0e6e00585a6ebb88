package sim

import (
	"encoding/binary"
	"math"

	"github.com/plantroom/plantroom/config"
)

// registerImage is what a Modbus device answers: its four register tables
// as they stand at one instant. Unmapped addresses inside a table read as
// zero; reads past the end of a table are illegal data addresses.
type registerImage struct {
	holding  []uint16
	input    []uint16
	coils    []bool
	discrete []bool
}

// newImage sizes an empty image for a template: each table ends at its
// highest mapped address.
func newImage(t *config.Template) *registerImage {
	var nh, ni, nc, nd int
	for i := range t.Points {
		pt := &t.Points[i]
		end := int(pt.Address) + pt.Registers()
		switch pt.Register {
		case config.RegHolding:
			nh = max(nh, end)
		case config.RegInput:
			ni = max(ni, end)
		case config.RegCoil:
			nc = max(nc, end)
		case config.RegDiscrete:
			nd = max(nd, end)
		}
	}
	return &registerImage{
		holding: make([]uint16, nh), input: make([]uint16, ni),
		coils: make([]bool, nc), discrete: make([]bool, nd),
	}
}

// encodeImage writes every point of t from values (missing metrics are 0).
// garbage replaces every value with an absurd one.
func encodeImage(t *config.Template, values map[string]float64, garbage bool) *registerImage {
	img := newImage(t)
	for i := range t.Points {
		pt := &t.Points[i]
		v := values[pt.Metric]
		switch pt.Register {
		case config.RegCoil:
			img.coils[pt.Address] = v != 0 || garbage
		case config.RegDiscrete:
			img.discrete[pt.Address] = v != 0 || garbage
		case config.RegHolding:
			putPoint(img.holding, pt, v, garbage)
		case config.RegInput:
			putPoint(img.input, pt, v, garbage)
		}
	}
	return img
}

// putPoint encodes one value into its registers: raw = (value − offset) /
// scale, in the point's type, byte order and word order.
func putPoint(regs []uint16, pt *config.Point, v float64, garbage bool) {
	if pt.Type == "bool" && pt.Bit != nil {
		mask := uint16(1) << uint(*pt.Bit)
		if v != 0 || garbage {
			regs[pt.Address] |= mask
		} else {
			regs[pt.Address] &^= mask
		}
		return
	}
	raw := (v - pt.Offset) / config.EffectiveScale(pt.Scale)
	var buf [8]byte
	n := config.TypeRegisters[pt.Type] * 2
	switch pt.Type {
	case "bool":
		binary.BigEndian.PutUint16(buf[:], uint16(b2f(v != 0 || garbage)))
	case "int16":
		x := int16(clampInt(raw, math.MinInt16, math.MaxInt16, false))
		if garbage {
			x = math.MaxInt16
		}
		binary.BigEndian.PutUint16(buf[:], uint16(x))
	case "uint16":
		x := uint16(clampInt(raw, 0, math.MaxUint16, pt.Counter))
		if garbage {
			x = math.MaxUint16
		}
		binary.BigEndian.PutUint16(buf[:], x)
	case "int32":
		x := int32(clampInt(raw, math.MinInt32, math.MaxInt32, false))
		if garbage {
			x = math.MaxInt32
		}
		binary.BigEndian.PutUint32(buf[:], uint32(x))
	case "uint32":
		x := uint32(clampInt(raw, 0, math.MaxUint32, pt.Counter))
		if garbage {
			x = math.MaxUint32
		}
		binary.BigEndian.PutUint32(buf[:], x)
	case "float32":
		f := float32(raw)
		if garbage {
			f = float32(math.NaN())
		}
		binary.BigEndian.PutUint32(buf[:], math.Float32bits(f))
	case "float64":
		if garbage {
			raw = math.NaN()
		}
		binary.BigEndian.PutUint64(buf[:], math.Float64bits(raw))
	}
	words := orderWords(buf[:n], pt.ByteOrder, pt.WordOrder)
	copy(regs[pt.Address:], words)
}

// orderWords turns a big-endian byte string into registers in the given
// byte order (within a register) and word order (of the registers).
func orderWords(b []byte, byteOrder, wordOrder string) []uint16 {
	words := make([]uint16, len(b)/2)
	for i := range words {
		if byteOrder == "little" {
			words[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		} else {
			words[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
	}
	if wordOrder == "little" {
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	return words
}

// clampInt rounds x to an integer in [lo, hi]. A counter wraps around the
// register's range instead, as a real register does.
func clampInt(x, lo, hi float64, wrap bool) int64 {
	x = math.Round(x)
	if math.IsNaN(x) {
		return 0
	}
	if wrap && lo == 0 {
		m := math.Mod(x, hi+1)
		if m < 0 {
			m += hi + 1
		}
		return int64(m)
	}
	return int64(math.Max(lo, math.Min(hi, x)))
}

// DecodePoint reads a point's value back from registers starting at the
// point's address: the inverse of the encoding the simulator serves, for
// tests and for quantising backfilled values exactly as a gateway reads them.
func DecodePoint(pt *config.Point, regs []uint16) float64 {
	n := config.TypeRegisters[pt.Type]
	if pt.Type == "bool" && pt.Bit != nil {
		return b2f(regs[0]&(1<<uint(*pt.Bit)) != 0)
	}
	var wbuf [4]uint16
	words := wbuf[:n]
	copy(words, regs[:n])
	if pt.WordOrder == "little" {
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	var bbuf [8]byte
	b := bbuf[:2*n]
	for i, w := range words {
		if pt.ByteOrder == "little" {
			b[2*i], b[2*i+1] = byte(w), byte(w>>8)
		} else {
			b[2*i], b[2*i+1] = byte(w>>8), byte(w)
		}
	}
	var raw float64
	switch pt.Type {
	case "bool":
		raw = b2f(binary.BigEndian.Uint16(b) != 0)
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
	}
	return raw*config.EffectiveScale(pt.Scale) + pt.Offset
}

// quantize returns v as a gateway reading the point would see it.
func quantize(pt *config.Point, v float64) float64 {
	if pt.Register == config.RegCoil || pt.Register == config.RegDiscrete {
		return b2f(v != 0)
	}
	at0 := *pt
	at0.Address = 0
	var regs [4]uint16
	putPoint(regs[:], &at0, v, false)
	return DecodePoint(&at0, regs[:])
}

// Quantizer returns the function that turns a metric's model value into
// the value a gateway reads: through the Modbus point's type, scale and
// offset, or rounded to the 3 decimals the simulator's MQTT messages carry.
// Unknown metrics pass through unchanged.
func Quantizer(t *config.Template, metric string) func(float64) float64 {
	if pt := t.Point(metric); pt != nil {
		p := *pt
		return func(v float64) float64 { return quantize(&p, v) }
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric != metric {
				continue
			}
			if len(f.Map) > 0 {
				return func(v float64) float64 { return v }
			}
			s, off := config.EffectiveScale(f.Scale), f.Offset
			return func(v float64) float64 { return round((v-off)/s, 3)*s + off }
		}
	}
	return func(v float64) float64 { return v }
}
