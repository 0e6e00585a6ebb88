package store

import (
	"testing"

	"github.com/plantroom/plantroom/protocol"
)

// CounterSteps answers the hours asked for and no others, although it
// reads each chunk's rows by device and overall time span.
func TestCounterStepsOnlyAskedHours(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const h0, hour, min = int64(1_782_864_000_000), int64(3_600_000), int64(60_000)
	var b ReadingBatch
	seq := uint64(0)
	for _, dev := range []string{"m1", "m2", "m3"} {
		for h := int64(0); h < 4; h++ {
			for i := int64(0); i < 3; i++ {
				seq++
				b.Add("acme", "p1", "gw", seq, &protocol.Reading{Device: dev, Metric: "energy_kwh", TS: h0 + h*hour + i*10*min, Value: float64(seq)})
			}
		}
	}
	if err := db.InsertReadings(ctx, &b); err != nil {
		t.Fatal(err)
	}
	ranges := []StepRange{
		{Device: "m1", Metric: "energy_kwh", From: h0 + hour, To: h0 + 2*hour},
		{Device: "m2", Metric: "energy_kwh", From: h0 + 3*hour, To: h0 + 4*hour},
		{Device: "m2", Metric: "energy_kwh", From: h0, To: h0 + hour},
	}
	rows, err := db.CounterSteps(ctx, "acme", []string{"p1"}, ranges, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Device+"@"+string(rune('0'+(r.Hour-h0)/hour)))
		if r.N != 3 || r.Falls {
			t.Errorf("%s hour %d: n %d falls %v, want 3 readings rising", r.Device, (r.Hour-h0)/hour, r.N, r.Falls)
		}
	}
	if want := "[m1@1 m2@0 m2@3]"; fmtList(got) != want {
		t.Errorf("hours answered %v, want %s", got, want)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestHourSetOverlappingRanges(t *testing.T) {
	hs := newHourSet([]StepRange{{From: 50, To: 60}, {From: 0, To: 100}, {From: 10, To: 20}, {From: 200, To: 210}})
	for h, want := range map[int64]bool{-1: false, 0: true, 15: true, 55: true, 70: true, 99: true, 100: false, 150: false, 200: true, 209: true, 210: false} {
		if got := hs.has(h); got != want {
			t.Errorf("has(%d) = %v, want %v", h, got, want)
		}
	}
	if (hourSet{}).has(0) {
		t.Error("an empty set has hour 0")
	}
}

func TestSplitWeeks(t *testing.T) {
	const h, week = int64(3_600_000), 7 * 24 * int64(3_600_000)
	w0 := 2900 * week
	pieces := splitWeeks([]StepRange{
		{Device: "a", Metric: "m", From: w0 + week - 2*h, To: w0 + 2*week + 3*h}, // three weeks
		{Device: "b", Metric: "m", From: w0 + 5*h, To: w0 + 6*h},
	})
	if len(pieces) != 3 {
		t.Fatalf("%d pieces, want 3: %+v", len(pieces), pieces)
	}
	var hours int64
	for i, p := range pieces {
		for _, r := range p {
			if r.From/week != w0/week+int64(i) || (r.To-1)/week != w0/week+int64(i) || r.To <= r.From {
				t.Errorf("piece %d holds %+v", i, r)
			}
			hours += (r.To - r.From) / h
		}
	}
	if hours != 2+week/h+3+1 {
		t.Errorf("pieces cover %d hours, want %d", hours, 2+week/h+3+1)
	}
}
