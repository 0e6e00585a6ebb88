package modbus

import (
	"fmt"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

// TestPlanShippedTemplates pins the request count of every shipped Modbus
// template for three gap fills.
//
//   - sdm630: input registers 0x00–0x11 (nine float32), 0x1E–0x23 (three),
//     0x34–0x35, 0x46–0x4B (three) and 0x156–0x157. The gaps between the
//     blocks are 12 (0x12–0x1D), 16 (0x24–0x33) and 16 (0x36–0x45)
//     registers, then 266 before 0x156. Gap fill 0: five requests; 12:
//     the first gap is bridged, four; 16: 0x00–0x4B is one request of 76
//     registers, plus 0x156, two. 0x156 is never reachable within 125.
//   - pump-vfd: holding 0–13 without gaps, one request at any gap fill.
//   - elevator: holding 0–11 without gaps and discrete inputs 0–1: two.
//   - lighting-panel: coils 0–3 and input registers 0–5: two.
func TestPlanShippedTemplates(t *testing.T) {
	want := map[string][3]int{ // gap fill 0, 12, 16
		"sdm630":         {5, 4, 2},
		"pump-vfd":       {1, 1, 1},
		"elevator":       {2, 2, 2},
		"lighting-panel": {2, 2, 2},
	}
	ts := shippedTemplates(t)
	for id, tmpl := range ts {
		if tmpl.Protocol != config.ProtoModbus {
			continue
		}
		w, ok := want[id]
		if !ok {
			t.Errorf("template %q has no expected request count: add it to this test", id)
			continue
		}
		for i, gap := range []int{0, 12, DefaultMaxGap} {
			reqs, err := Plan(tmpl, gap)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if len(reqs) != w[i] {
				t.Errorf("%s with gap fill %d: %d requests %v, want %d", id, gap, len(reqs), reqs, w[i])
			}
			checkCovers(t, tmpl, reqs)
		}
	}
	reqs, _ := Plan(ts["sdm630"], DefaultMaxGap)
	if got := fmt.Sprint(reqs[0].String(), " ", reqs[1].String()); got != "input 0+76 input 342+2" {
		t.Errorf("sdm630 plan = %s, want input 0+76 input 342+2", got)
	}
}

// checkCovers asserts that every point is in exactly one request, within
// its bounds and limits.
func checkCovers(t *testing.T, tmpl *config.Template, reqs []Request) {
	t.Helper()
	seen := map[int]int{}
	for _, r := range reqs {
		limit := MaxRegisters
		if r.bits() {
			limit = MaxBits
		}
		if r.Count == 0 || int(r.Count) > limit {
			t.Errorf("%s: request %s exceeds the limit %d", tmpl.ID, r, limit)
		}
		for _, i := range r.Points {
			pt := &tmpl.Points[i]
			seen[i]++
			if pt.Register != r.Register || pt.Address < r.Address || int(pt.Address)+pt.Registers() > int(r.Address)+int(r.Count) {
				t.Errorf("%s: point %s (%s %d) outside request %s", tmpl.ID, pt.Metric, pt.Register, pt.Address, r)
			}
		}
	}
	for i := range tmpl.Points {
		if seen[i] != 1 {
			t.Errorf("%s: point %s in %d requests", tmpl.ID, tmpl.Points[i].Metric, seen[i])
		}
	}
}

func bit(n int) *int { return &n }

func TestPlanLimits(t *testing.T) {
	tmpl := func(pts ...config.Point) *config.Template {
		for i := range pts {
			pts[i].Metric = fmt.Sprintf("m%d", i)
			if pts[i].Type == "" {
				pts[i].Type = "bool"
			}
		}
		return &config.Template{ID: "t", Protocol: config.ProtoModbus, Points: pts}
	}
	plan := func(t *testing.T, tm *config.Template, gap int) string {
		t.Helper()
		reqs, err := Plan(tm, gap)
		if err != nil {
			t.Fatal(err)
		}
		checkCovers(t, tm, reqs)
		var s []string
		for _, r := range reqs {
			s = append(s, r.String())
		}
		return strings.Join(s, ", ")
	}
	var regs []config.Point
	for a := 0; a < 130; a++ {
		regs = append(regs, config.Point{Register: config.RegHolding, Address: uint16(a), Type: "uint16"})
	}
	var coils []config.Point
	for a := 0; a < 2100; a++ {
		coils = append(coils, config.Point{Register: config.RegCoil, Address: uint16(a)})
	}
	var upTo121 []config.Point
	for a := 0; a < 121; a++ {
		upTo121 = append(upTo121, config.Point{Register: config.RegInput, Address: uint16(a), Type: "uint16"})
	}
	cases := []struct {
		name string
		tm   *config.Template
		gap  int
		want string
	}{
		{"130 registers: 125 + 5", tmpl(regs...), 0, "holding 0+125, holding 125+5"},
		{"2100 coils: 2000 + 100", tmpl(coils...), 0, "coil 0+2000, coil 2000+100"},
		{"float64 ending exactly at 125", tmpl(append(upTo121[:121:121], config.Point{Register: config.RegInput, Address: 121, Type: "float64"})...), 0,
			"input 0+125"},
		{"float64 one past 125 starts a request", tmpl(append(upTo121[:121:121], config.Point{Register: config.RegInput, Address: 122, Type: "float64"})...), 1,
			"input 0+121, input 122+4"},
		{"gap of exactly the fill is bridged", tmpl(
			config.Point{Register: config.RegHolding, Address: 0, Type: "uint16"},
			config.Point{Register: config.RegHolding, Address: 11, Type: "uint32"}), 10, "holding 0+13"},
		{"gap one above the fill is not", tmpl(
			config.Point{Register: config.RegHolding, Address: 0, Type: "uint16"},
			config.Point{Register: config.RegHolding, Address: 12, Type: "uint32"}), 10, "holding 0+1, holding 12+2"},
		{"bits of one register share it", tmpl(
			config.Point{Register: config.RegHolding, Address: 5, Bit: bit(3)},
			config.Point{Register: config.RegHolding, Address: 5, Bit: bit(0)},
			config.Point{Register: config.RegHolding, Address: 5, Type: "uint16"}), 0, "holding 5+1"},
		{"mixed kinds in function-code order, unsorted input", tmpl(
			config.Point{Register: config.RegInput, Address: 4, Type: "float32"},
			config.Point{Register: config.RegHolding, Address: 1, Type: "int16"},
			config.Point{Register: config.RegDiscrete, Address: 0},
			config.Point{Register: config.RegCoil, Address: 7},
			config.Point{Register: config.RegInput, Address: 0, Type: "float32"},
			config.Point{Register: config.RegHolding, Address: 0, Type: "int16"}), 0,
			"coil 7+1, discrete 0+1, holding 0+2, input 0+2, input 4+2"},
		{"coil gap counts in bits: 16 per register of fill", tmpl(
			config.Point{Register: config.RegCoil, Address: 0},
			config.Point{Register: config.RegCoil, Address: 17},
			config.Point{Register: config.RegCoil, Address: 40}), 1, "coil 0+18, coil 40+1"},
		{"highest address", tmpl(config.Point{Register: config.RegInput, Address: 65534, Type: "uint32"}), 0, "input 65534+2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan(t, tc.tm, tc.gap); got != tc.want {
				t.Errorf("plan = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	good := &config.Template{ID: "t", Protocol: config.ProtoModbus, Points: []config.Point{{Metric: "a", Register: config.RegHolding, Type: "uint16"}}}
	cases := []struct {
		tm   *config.Template
		gap  int
		want string
	}{
		{nil, 0, "no template"},
		{&config.Template{ID: "plug", Protocol: config.ProtoMQTT}, 0, `protocol is "mqtt"`},
		{good, -1, "gap fill -1"},
		{good, 126, "gap fill 126"},
		{&config.Template{ID: "t", Protocol: config.ProtoModbus, Points: []config.Point{{Metric: "a", Register: "fifo", Type: "uint16"}}}, 0, `unknown register kind "fifo"`},
		{&config.Template{ID: "t", Protocol: config.ProtoModbus, Points: []config.Point{{Metric: "a", Register: config.RegInput, Type: "int64"}}}, 0, `unknown type "int64"`},
		{&config.Template{ID: "t", Protocol: config.ProtoModbus, Points: []config.Point{{Metric: "a", Register: config.RegInput, Address: 65535, Type: "float32"}}}, 0, "past address 65535"},
	}
	for _, tc := range cases {
		_, err := Plan(tc.tm, tc.gap)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "cannot plan reads") {
			t.Errorf("Plan(%v, %d) = %v, want an error with %q", tc.tm, tc.gap, err, tc.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tm := &config.Template{ID: "t", Protocol: config.ProtoModbus, Points: []config.Point{
		{Metric: "a", Register: config.RegHolding, Address: 0, Type: "uint32"},
		{Metric: "b", Register: config.RegHolding, Address: 4, Type: "bool", Bit: bit(1)},
		{Metric: "c", Register: config.RegHolding, Address: 4, Type: "bool", Bit: bit(2)},
		{Metric: "d", Register: config.RegHolding, Address: 9, Type: "float32"},
	}}
	reqs, err := Plan(tm, 10)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("plan = %v, %v; want one request", reqs, err)
	}
	parts := reqs[0].split(tm)
	var got string
	for _, p := range parts {
		got += fmt.Sprintf("%s%v ", p, p.Points)
	}
	if want := "holding 0+2[0] holding 4+1[1 2] holding 9+2[3] "; got != want {
		t.Errorf("split = %s, want %s", got, want)
	}
	checkCovers(t, tm, parts)
}
