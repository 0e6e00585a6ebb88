package energy

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func testSchedule(t *testing.T, loc string, from, to time.Time) *Schedule {
	t.Helper()
	s, err := NewSchedule(testTariff(), nil, mustLoc(t, loc), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestComputeHandWorked(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	// One day, 1 July 2026 (summer, new version). Readings of a pump's
	// counter every hour on the half hour, local time:
	//   30 June 23:30 → 1000 (before the day)
	//   1 July 00:30 → 1001 … each hour +1 kWh … until 11:30 → 1012
	//   12:30 → 3 (meter replaced: +3), 13:30 → 5, …
	// and nothing after 13:30 until 2 July 00:30 → 25.
	m := newMem()
	at := func(h, min int) int64 { return time.Date(2026, 7, 1, h, min, 0, 0, sh).UnixMilli() }
	m.add("p1", "energy_kwh", Point{at(-1, 30), 1000})
	for h := 0; h <= 11; h++ {
		m.add("p1", "energy_kwh", Point{at(h, 30), 1001 + float64(h)})
	}
	m.add("p1", "energy_kwh", Point{at(12, 30), 3}, Point{at(13, 30), 5}, Point{at(24, 30), 25})
	// A duplicate delivery of two readings changes nothing.
	m.add("p1", "energy_kwh", Point{at(5, 30), 1006}, Point{at(12, 30), 3})

	s := testSchedule(t, "Asia/Shanghai", time.Date(2026, 7, 1, 0, 0, 0, 0, sh), time.Date(2026, 7, 2, 0, 0, 0, 0, sh))
	// P = 10 kW: every rise of 1 kWh an hour is plausible, and the new
	// meter's 3 kWh is within an hour's allowance (10.05 kWh).
	dev := Device{ID: "p1", Category: "pump", Counter: "energy_kwh", MaxKW: 10, Poll: 10 * time.Second}
	res, err := Compute(context.Background(), m, "acme", []Job{{Project: "garden", Devices: []Device{dev}, Schedule: s}})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0].Devices[0]
	// By period (local hours; C rises 1 kWh per hour from 23:30 to 11:30):
	//   valley 00–06: 6 kWh; flat 06–08: 2; peak 08–12: 3.5 (08→11:30) + 0.5×3
	//   (11:30→12:30 is the replacement step of 3 kWh, half of it before 12:00) = 5;
	//   critical peak 12–14: 1.5 (rest of the step) + 2 (12:30→13:30) + half of
	//   13:30→24:30's 20 kWh over 11 h (0.5 h × 20/11) = 3.5 + 10/11;
	//   flat 14–18: 4 h × 20/11; peak 18–21: 3 h × 20/11; flat 21–22: 20/11;
	//   valley 22–24: 2 × 20/11.
	r20 := 20.0 / 11
	want := []float64{6, 2, 5, 3.5 + 0.5*r20, 4 * r20, 3 * r20, r20, 2 * r20}
	for i, w := range want {
		near(t, s.Slots[i].Period, r.Slots[i], w)
	}
	// Total: C(24:00) − C(00:00) = (1012.5 … ) simply 1000+… : from 00:00 (1000.5)
	// to 11:30 (1012) is 11.5, the step 3, 12:30→13:30 2, then 10.5 h × 20/11.
	near(t, "total", r.KWh, 11.5+3+2+10.5*r20)
	cost := 6*0.3250 + 2*0.6890 + 5*1.1070 + (3.5+0.5*r20)*1.3290 + 4*r20*0.6890 + 3*r20*1.1070 + r20*0.6890 + 2*r20*0.3250
	near(t, "cost", r.Cost, cost)
	if len(r.Events) != 1 || r.Events[0].Kind != EventReplacement || r.Events[0].Credited != 3 {
		t.Errorf("events = %+v", r.Events)
	}
	// 13:30 → 00:30 next day is 11 h without readings: one interpolated gap,
	// clipped to the day.
	if len(r.Gaps) != 1 || !r.Gaps[0].Interpolated || r.Gaps[0].From != at(13, 30) || r.Gaps[0].To != at(24, 0) {
		t.Errorf("gaps = %+v", r.Gaps)
	}
	if !r.Estimated() {
		t.Error("a figure with a gap is estimated")
	}
	// 24 hours expected; readings in the hours starting 00 … 13 local.
	if r.HoursExpected != 24 || r.HoursPresent != 14 {
		t.Errorf("hours present/expected = %d/%d, want 14/24", r.HoursPresent, r.HoursExpected)
	}
	// Only the hour of the replacement needed raw readings… but no hour's
	// own readings fell (one reading per hour), so none did.
	if m.calls.raw != 0 {
		t.Errorf("raw reads = %d (%v), want none", m.calls.raw, m.asked)
	}
}

func TestComputePowerOnly(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	at := func(h int) int64 { return time.Date(2026, 7, 1, h, 0, 0, 0, sh).UnixMilli() }
	m := newMem()
	// A light drawing 2000 W from 00:00 to 02:00, then 1000 W until 24:00,
	// read hourly in W. Trapezoids: 2 + 2 + 1.5 (02→03: (2000+1000)/2) …
	// simpler: readings 2000 at 0,1,2 and 1000 from 3 on: 2+2+1.5+21×1 = 26.5 kWh.
	for h := 0; h <= 24; h++ {
		v := 1000.0
		if h <= 2 {
			v = 2000
		}
		m.add("l1", "power_w", Point{at(h), v})
	}
	s := testSchedule(t, "Asia/Shanghai", time.Date(2026, 7, 1, 0, 0, 0, 0, sh), time.Date(2026, 7, 2, 0, 0, 0, 0, sh))
	dev := Device{ID: "l1", Category: "lighting", Counter: "energy_kwh", Power: "power_w", PowerToKW: 0.001, Poll: time.Minute}
	res, err := Compute(context.Background(), m, "acme", []Job{{Project: "garden", Devices: []Device{dev}, Schedule: s}})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0].Devices[0]
	if r.Source != SourcePower || !r.Estimated() {
		t.Fatalf("source = %q estimated = %v, want power, true", r.Source, r.Estimated())
	}
	near(t, "total", r.KWh, 26.5)
	near(t, "valley 00–06", r.Slots[0], 2+2+1.5+3)
	if m.calls.raw != 1 {
		t.Errorf("raw reads = %d, want 1 (the power readings)", m.calls.raw)
	}
	if r.HoursPresent != 24 {
		t.Errorf("hours present = %d", r.HoursPresent)
	}
}

func TestComputeNoData(t *testing.T) {
	sh := mustLoc(t, "Asia/Shanghai")
	s := testSchedule(t, "Asia/Shanghai", time.Date(2026, 7, 1, 0, 0, 0, 0, sh), time.Date(2026, 7, 2, 0, 0, 0, 0, sh))
	dev := Device{ID: "x", Counter: "energy_kwh", Power: "power_w", PowerToKW: 1, Poll: 10 * time.Second}
	m := newMem()
	// Power readings of another day only.
	m.add("x", "power_w", Point{time.Date(2026, 7, 3, 0, 0, 0, 0, sh).UnixMilli(), 5})
	res, err := Compute(context.Background(), m, "acme", []Job{{Project: "p", Devices: []Device{dev}, Schedule: s}})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0].Devices[0]
	if r.Source != SourceNone || r.KWh != 0 || len(r.Gaps) != 1 || r.Gaps[0].Interpolated || r.HoursPresent != 0 {
		t.Errorf("no-data device = %+v", r)
	}
	// The roll-up has no power hour in the day: no raw read.
	if m.calls.raw != 0 {
		t.Errorf("raw reads = %d (%v), want none", m.calls.raw, m.asked)
	}
}

// TestComputeMatchesRaw checks the roll-up path against the definition
// applied to every raw reading: random counters with replacements,
// rollovers, gaps, duplicates and jittered timestamps, and the glitches the
// plausibility walk exists for: single bad polls (0, garbage, a step back),
// spikes of one or two readings, and jumps that stay; in a zone whose
// midnight is not on a UTC hour and a tariff with quarter-hour bounds.
func TestComputeMatchesRaw(t *testing.T) {
	for _, zone := range []string{"Asia/Shanghai", "Asia/Kolkata", "America/New_York"} {
		t.Run(zone, func(t *testing.T) {
			loc := mustLoc(t, zone)
			rng := rand.New(rand.NewPCG(7, uint64(len(zone))))
			m := newMem()
			from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
			to := time.Date(2026, 4, 1, 0, 0, 0, 0, loc)
			var devs []Device
			events := map[string]int{}
			for d := 0; d < 6; d++ {
				id := string(rune('a' + d))
				const R = 100000
				v := 90000 + rng.Float64()*9000
				ts := from.Add(-3 * time.Hour).UnixMilli()
				var all []Point
				for ts < to.Add(3*time.Hour).UnixMilli() {
					ts += 60_000 + rng.Int64N(240_000) // 1–5 min apart
					if rng.IntN(2000) == 0 {
						ts += rng.Int64N(10) * HourMS // a gap of up to 9 h
					}
					v += rng.Float64() * 2 // up to 120 kW
					switch rng.IntN(1500) {
					case 0:
						v = rng.Float64() * 3 // meter replaced
					case 1:
						v = R - rng.Float64()*5 // about to roll over
					case 2:
						v += 200 + rng.Float64()*1000 // a jump that stays
					case 3:
						v = max(v-300, 0) // a jump down that stays
					}
					if v >= R {
						v -= R
					}
					glitch := v
					switch rng.IntN(400) {
					case 0:
						glitch = 0 // a poll reading 0
					case 1:
						glitch = v - 50 // a step back
					case 2:
						glitch = v + 5000 + rng.Float64()*1e6 // garbage
					case 3:
						glitch = v * 0.999 // a small step back
					case 4:
						// a spike of two readings
						all = append(all, Point{ts, v + 777})
						ts += 60_000 + rng.Int64N(240_000)
						glitch = v + 778
					}
					all = append(all, Point{ts, glitch})
				}
				m.add(id, "energy_kwh", all...)
				m.add(id, "energy_kwh", all[:len(all)/3]...) // redelivered
				devs = append(devs, Device{ID: id, Counter: "energy_kwh", Rollover: R, MaxKW: 150, Poll: time.Minute})
			}
			tf := testTariff()
			tf.Versions[1].Seasons[1].Periods[1].To = "07:45"
			tf.Versions[1].Seasons[1].Periods[2].From = "07:45"
			tf.Versions[0].EffectiveFrom = "2025-01-01"
			tf.Versions[1].EffectiveFrom = "2026-03-17"
			s, err := NewSchedule(tf, nil, loc, from, to)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Compute(context.Background(), m, "acme", []Job{{Project: "p", Devices: devs, Schedule: s}})
			if err != nil {
				t.Fatal(err)
			}
			bounds := s.Bounds()
			for i, d := range devs {
				full := Walk(m.raw[Key{d.ID, d.Counter}], d.MaxKW, d.Rollover)
				want := full.Spread(bounds)
				got := res[0].Devices[i].Slots
				var total float64
				for k := range want {
					// The two paths add different runs of readings, so float
					// rounding differs a little on totals of a million kWh.
					if math.Abs(got[k]-want[k]) > 1e-6 {
						t.Errorf("%s slot %d: %.9f kWh, want %.9f", d.ID, k, got[k], want[k])
					}
					total += want[k]
				}
				if math.Abs(res[0].Devices[i].KWh-total) > 1e-6 {
					t.Errorf("%s total: %.9f kWh, want %.9f", d.ID, res[0].Devices[i].KWh, total)
				}
				wantGaps := FindGaps(full.Times(), s.From, s.To, GapThreshold(d.Poll).Milliseconds())
				if len(wantGaps) != len(res[0].Devices[i].Gaps) {
					t.Errorf("%s: gaps %v, want %v", d.ID, res[0].Devices[i].Gaps, wantGaps)
				}
				var wantEvents []Event
				for _, e := range full.Events {
					if e.TS >= s.From && e.TS < s.To {
						wantEvents = append(wantEvents, e)
					}
				}
				gotEvents := res[0].Devices[i].Events
				if len(gotEvents) != len(wantEvents) {
					t.Errorf("%s: %d events, want %d", d.ID, len(gotEvents), len(wantEvents))
				} else {
					for k := range wantEvents {
						g, w := gotEvents[k], wantEvents[k]
						if g.TS != w.TS || g.Kind != w.Kind || g.PrevTS != w.PrevTS || math.Abs(g.Credited-w.Credited) > 1e-9 {
							t.Errorf("%s event %d = %+v, want %+v", d.ID, k, g, w)
						}
					}
				}
				for _, e := range wantEvents {
					events[e.Kind]++
				}
			}
			// The data must exercise every kind of event, or the test proves little.
			for _, k := range EventKinds {
				if events[k] == 0 {
					t.Errorf("no %s in the data (events: %v)", k, events)
				}
			}
			// The fast path must stay fast: raw readings for a small share
			// of hours (in Kolkata every tariff boundary is inside an hour,
			// a third of all hours, which needs raw readings anyway).
			var rawHours int64
			for _, r := range m.asked {
				rawHours += (r.To - r.From) / HourMS
			}
			allHours := int64(len(devs)) * (s.To - s.From) / HourMS
			if m.calls.raw == 0 || rawHours > allHours/2 {
				t.Errorf("raw reads = %d rounds, %d of %d hours", m.calls.raw, rawHours, allHours)
			}
			t.Logf("events %v; raw reads %d rounds, %d of %d hours", events, m.calls.raw, rawHours, allHours)
		})
	}
}
