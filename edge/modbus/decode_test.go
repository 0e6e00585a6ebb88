package modbus

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

// TestDecodeGolden decodes hand-written register bytes: the reference the
// round-trip test below cannot give (it would agree with a consistently
// wrong encoder).
func TestDecodeGolden(t *testing.T) {
	cases := []struct {
		typ, bo, wo string
		regs        []byte
		scale, off  float64
		want        float64
	}{
		{"float32", "big", "big", []byte{0x43, 0x48, 0x80, 0x00}, 0, 0, 200.5},
		{"float32", "big", "little", []byte{0x80, 0x00, 0x43, 0x48}, 0, 0, 200.5},
		{"float32", "little", "big", []byte{0x48, 0x43, 0x00, 0x80}, 0, 0, 200.5},
		{"float32", "little", "little", []byte{0x00, 0x80, 0x48, 0x43}, 0, 0, 200.5},
		{"float32", "big", "big", []byte{0xC3, 0x48, 0x80, 0x00}, 0, 0, -200.5},
		{"float64", "big", "big", []byte{0x40, 0x69, 0x10, 0, 0, 0, 0, 0}, 0, 0, 200.5},
		{"float64", "big", "little", []byte{0, 0, 0, 0, 0x10, 0, 0x40, 0x69}, 0, 0, 200.5},
		{"float64", "little", "big", []byte{0x69, 0x40, 0, 0x10, 0, 0, 0, 0}, 0, 0, 200.5},
		{"float64", "little", "little", []byte{0, 0, 0, 0, 0, 0x10, 0x69, 0x40}, 0, 0, 200.5},
		{"int16", "big", "big", []byte{0xFF, 0xFE}, 0, 0, -2},
		{"int16", "little", "big", []byte{0xFE, 0xFF}, 0, 0, -2},
		{"int16", "big", "big", []byte{0xFF, 0x9C}, 0.1, 0, -10}, // motor temperature −10.0 °C
		{"uint16", "big", "big", []byte{0xFF, 0xFE}, 0, 0, 65534},
		{"uint16", "big", "big", []byte{0x13, 0x88}, 0.01, 0, 50}, // 5000 × 0.01 Hz
		{"uint16", "big", "big", []byte{0x00, 0x64}, 0.5, -40, 10},
		{"int32", "big", "big", []byte{0xFF, 0xFF, 0xFF, 0xFE}, 0, 0, -2},
		{"int32", "big", "little", []byte{0xFF, 0xFE, 0xFF, 0xFF}, 0, 0, -2},
		{"int32", "little", "little", []byte{0xFE, 0xFF, 0xFF, 0xFF}, 0, 0, -2},
		{"int32", "little", "big", []byte{0xFF, 0xFF, 0xFE, 0xFF}, 0, 0, -2},
		{"uint32", "big", "big", []byte{0x00, 0x01, 0x00, 0x02}, 0, 0, 65538},
		{"uint32", "big", "little", []byte{0x00, 0x02, 0x00, 0x01}, 0, 0, 65538},
		{"uint32", "little", "big", []byte{0x01, 0x00, 0x02, 0x00}, 0, 0, 65538},
		{"uint32", "little", "little", []byte{0x02, 0x00, 0x01, 0x00}, 0, 0, 65538},
		{"uint32", "big", "big", []byte{0xFF, 0xFF, 0xFF, 0xFF}, 0.01, 0, 42949672.95}, // kWh just before rollover
		{"bool", "big", "big", []byte{0x00, 0x00}, 0, 0, 0},
		{"bool", "big", "big", []byte{0x01, 0x00}, 0, 0, 1},
	}
	for _, tc := range cases {
		pt := &config.Point{Metric: "m", Register: config.RegHolding, Type: tc.typ, ByteOrder: tc.bo, WordOrder: tc.wo, Scale: tc.scale, Offset: tc.off}
		got, err := decodeRegisters(pt, tc.regs)
		if err != nil || math.Abs(got-tc.want) > 1e-9*math.Max(1, math.Abs(tc.want)) {
			t.Errorf("%s %s/%s % x ×%v %+v = %v, %v; want %v", tc.typ, tc.bo, tc.wo, tc.regs, tc.scale, tc.off, got, err, tc.want)
		}
	}
}

// encode is an independent encoder for the round trip: raw value → bytes
// big-endian, then words reversed for little word order, then bytes
// swapped within each word for little byte order.
func encode(typ string, raw float64, bo, wo string) []byte {
	var b []byte
	switch typ {
	case "int16":
		b = binary.BigEndian.AppendUint16(nil, uint16(int16(raw)))
	case "uint16":
		b = binary.BigEndian.AppendUint16(nil, uint16(raw))
	case "int32":
		b = binary.BigEndian.AppendUint32(nil, uint32(int32(raw)))
	case "uint32":
		b = binary.BigEndian.AppendUint32(nil, uint32(raw))
	case "float32":
		b = binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(raw)))
	case "float64":
		b = binary.BigEndian.AppendUint64(nil, math.Float64bits(raw))
	}
	n := len(b) / 2
	out := make([]byte, len(b))
	for i := 0; i < n; i++ {
		src := i
		if wo == "little" {
			src = n - 1 - i
		}
		out[2*i], out[2*i+1] = b[2*src], b[2*src+1]
		if bo == "little" {
			out[2*i], out[2*i+1] = out[2*i+1], out[2*i]
		}
	}
	return out
}

func TestDecodeRoundTrip(t *testing.T) {
	raws := map[string][]float64{
		"int16":   {0, 1, -1, 12345, -32768, 32767},
		"uint16":  {0, 1, 40000, 65535},
		"int32":   {0, -1, 70000, -70000, math.MinInt32, math.MaxInt32},
		"uint32":  {0, 1, 70000, 4294967295},
		"float32": {0, 1.5, -1.5, 229.75, -0.125, 1e30, -3.25e-3},
		"float64": {0, 1.5, -1.5, 123456789.125, -1e-300, 1e300},
	}
	scales := []struct{ scale, off float64 }{{0, 0}, {1, 0}, {0.01, 0}, {0.1, -40}, {-2, 5}, {10, 0.5}}
	n := 0
	for typ, vs := range raws {
		for _, bo := range []string{"big", "little"} {
			for _, wo := range []string{"big", "little"} {
				for _, s := range scales {
					for _, raw := range vs {
						pt := &config.Point{Metric: "m", Register: config.RegInput, Address: 3, Type: typ, ByteOrder: bo, WordOrder: wo, Scale: s.scale, Offset: s.off}
						// The point sits at offset 3 of a longer answer.
						data := append(make([]byte, 6), encode(typ, raw, bo, wo)...)
						data = append(data, 0xAA, 0xBB)
						r := &Request{Register: config.RegInput, Address: 0, Count: uint16(len(data) / 2)}
						got, err := decodePoint(pt, r, data)
						want := raw*config.EffectiveScale(s.scale) + s.off
						if typ == "float32" {
							want = float64(float32(raw))*config.EffectiveScale(s.scale) + s.off
						}
						if err != nil || got != want {
							t.Errorf("%s %s/%s raw %v scale %v offset %v: got %v, %v; want %v", typ, bo, wo, raw, s.scale, s.off, got, err, want)
						}
						n++
					}
				}
			}
		}
	}
	if n < 500 {
		t.Fatalf("only %d cases ran", n)
	}
}

func TestDecodeBits(t *testing.T) {
	// Coils 10–20 in one answer: packed LSB first, coil 10 is bit 0 of byte 0.
	r := &Request{Register: config.RegCoil, Address: 10, Count: 11}
	data := []byte{0b1000_0101, 0b0000_0110}
	want := map[uint16]float64{10: 1, 11: 0, 12: 1, 13: 0, 17: 1, 18: 0, 19: 1, 20: 1}
	for addr, w := range want {
		got, err := decodePoint(&config.Point{Metric: "c", Register: config.RegCoil, Address: addr, Type: "bool"}, r, data)
		if err != nil || got != w {
			t.Errorf("coil %d = %v, %v; want %v", addr, got, err, w)
		}
	}
	// Bits of a holding register: bit 0 is the least significant bit,
	// whatever the byte order setting.
	rr := &Request{Register: config.RegHolding, Address: 7, Count: 2}
	regs := []byte{0x00, 0x00, 0x80, 0x21} // register 8 = 0x8021
	for b, w := range map[int]float64{0: 1, 1: 0, 5: 1, 6: 0, 15: 1, 14: 0} {
		pt := &config.Point{Metric: "b", Register: config.RegHolding, Address: 8, Type: "bool", Bit: bit(b)}
		got, err := decodePoint(pt, rr, regs)
		if err != nil || got != w {
			t.Errorf("bit %d of 0x8021 = %v, %v; want %v", b, got, err, w)
		}
	}
	pt := &config.Point{Metric: "b", Register: config.RegHolding, Address: 7, Type: "bool"}
	if got, _ := decodePoint(pt, rr, regs); got != 0 {
		t.Errorf("bool on register 7 (0x0000) = %v, want 0", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	f32 := func(v float32) []byte { return binary.BigEndian.AppendUint32(nil, math.Float32bits(v)) }
	f64 := func(v float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)) }
	cases := []struct {
		pt   config.Point
		data []byte
		want error
	}{
		{config.Point{Type: "float32"}, f32(float32(math.NaN())), ErrInvalidValue},
		{config.Point{Type: "float32"}, f32(float32(math.Inf(1))), ErrInvalidValue},
		{config.Point{Type: "float64"}, f64(math.Inf(-1)), ErrInvalidValue},
		{config.Point{Type: "float64"}, f64(math.MaxFloat64), nil},
		{config.Point{Type: "float64", Scale: 10}, f64(math.MaxFloat64), ErrInvalidValue}, // scaled out of range
		{config.Point{Type: "float32"}, []byte{0x43, 0x48}, ErrDecode},                    // answer too short
		{config.Point{Type: "int64"}, make([]byte, 8), ErrDecode},
	}
	for _, tc := range cases {
		tc.pt.Metric, tc.pt.Register, tc.pt.ByteOrder, tc.pt.WordOrder = "m", config.RegInput, "big", "big"
		r := &Request{Register: config.RegInput, Count: uint16(len(tc.data) / 2)}
		_, err := decodePoint(&tc.pt, r, tc.data)
		if !errors.Is(err, tc.want) || (err != nil && !strings.Contains(err.Error(), `"m"`)) {
			t.Errorf("%s % x: err = %v, want %v naming the metric", tc.pt.Type, tc.data, err, tc.want)
		}
	}
	// A coil past the answer.
	_, err := decodePoint(&config.Point{Metric: "m", Register: config.RegCoil, Address: 9}, &Request{Register: config.RegCoil, Count: 8}, []byte{0xFF})
	if !errors.Is(err, ErrDecode) {
		t.Errorf("coil past the answer: %v, want ErrDecode", err)
	}
}
