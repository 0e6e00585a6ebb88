package backfill

import (
	"context"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/internal/mqtttest"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func gardenOptions(t testing.TB, broker string) Options {
	t.Helper()
	cfg, err := sim.LoadConfig(filepath.Join("..", "..", "configs", "building-garden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := config.LoadTemplates(cfg.Templates)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 8, 1, 0, 0, 0, 0, shanghai)
	return Options{
		Building: cfg, Templates: ts,
		Gateway: protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"},
		From:    from, To: from.AddDate(0, 0, 3), Interval: time.Minute, Location: shanghai,
		SeqStart: 5000, Broker: broker, Username: "gw-garden-1", Password: "demo-gw-garden-1-secret",
	}
}

// received decodes every batch the subscriber got, in arrival order.
func received(t *testing.T, sub *mqtttest.Subscriber, n int) []protocol.Batch {
	t.Helper()
	var msgs []mqtttest.Message
	deadline := time.Now().Add(30 * time.Second)
	for msgs = sub.Messages(); len(msgs) < n; msgs = sub.Messages() {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d batches", len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := make([]protocol.Batch, len(msgs))
	for i, m := range msgs {
		if err := protocol.DecodeBatch(m.Payload, &out[i]); err != nil {
			t.Fatalf("batch %d does not decode: %v", i, err)
		}
	}
	return out
}

// counterEnergy is an independent reading of the energy definition: C(t)
// is the counter with drops unwrapped (a rollover when the counter has
// rollover R and the previous value is at least 0.9 R, else a meter
// replacement), linear between readings; energy in [a, b) = C(b) − C(a).
type counterEnergy struct {
	ts []int64
	c  []float64
}

func newCounterEnergy(ts []int64, vals []float64, rollover float64) *counterEnergy {
	e := &counterEnergy{ts: ts, c: make([]float64, len(vals))}
	for i := 1; i < len(vals); i++ {
		d := vals[i] - vals[i-1]
		if d < 0 {
			if rollover > 0 && vals[i-1] >= 0.9*rollover {
				d = rollover - vals[i-1] + vals[i]
			} else {
				d = vals[i]
			}
		}
		e.c[i] = e.c[i-1] + d
	}
	return e
}

func (e *counterEnergy) at(t time.Time) float64 {
	ms := t.UnixMilli()
	i := sort.Search(len(e.ts), func(i int) bool { return e.ts[i] >= ms })
	switch {
	case i == 0:
		return e.c[0]
	case i == len(e.ts):
		return e.c[len(e.c)-1]
	case e.ts[i] == ms:
		return e.c[i]
	}
	f := float64(ms-e.ts[i-1]) / float64(e.ts[i]-e.ts[i-1])
	return e.c[i-1] + f*(e.c[i]-e.c[i-1])
}

func TestBackfillPublishesWhatAGatewayWould(t *testing.T) {
	broker := mqtttest.StartBroker(t)
	o := gardenOptions(t, broker)
	sub := mqtttest.Subscribe(t, broker, o.Gateway.Topic(protocol.KindTelemetry))
	replaced := o.From.Add(30*time.Hour + 30*time.Minute + 20*time.Second)
	o.Replacements = []Replacement{{Device: "garden-meter-main", At: replaced}}
	o.Gaps = []Gap{
		{From: o.From.Add(50 * time.Hour), To: o.From.Add(53*time.Hour + 20*time.Minute)},
		{Device: "garden-pump-1", From: o.From.Add(10 * time.Hour), To: o.From.Add(12 * time.Hour)},
	}
	o.Window = 4
	exp, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	batches := received(t, sub, exp.Batches)

	// Sequence, gateway, sizes.
	if exp.SeqFirst != 5001 || exp.SeqLast != 5000+uint64(exp.Batches) {
		t.Errorf("expected file says seq %d…%d for %d batches", exp.SeqFirst, exp.SeqLast, exp.Batches)
	}
	series := map[string]map[string][]protocol.Reading{}
	n := 0
	for i, b := range batches {
		if b.Gateway != "gw-garden-1" || b.Seq != 5001+uint64(i) {
			t.Fatalf("batch %d: gateway %q seq %d", i, b.Gateway, b.Seq)
		}
		if len(b.Readings) > protocol.MaxBatchReadings {
			t.Fatalf("batch %d holds %d readings", i, len(b.Readings))
		}
		for _, r := range b.Readings {
			n++
			ts := time.UnixMilli(r.TS)
			if ts.Before(o.From) || !ts.Before(o.To) {
				t.Fatalf("reading at %s outside the period", ts)
			}
			if o.inGap(r.Device, ts) {
				t.Fatalf("reading of %s at %s inside a gap", r.Device, ts)
			}
			if series[r.Device] == nil {
				series[r.Device] = map[string][]protocol.Reading{}
			}
			series[r.Device][r.Metric] = append(series[r.Device][r.Metric], r)
		}
	}
	if n != exp.Readings {
		t.Errorf("received %d readings, the expected file says %d", n, exp.Readings)
	}
	if len(series) != len(o.Building.Devices) || len(exp.Devices) != len(o.Building.Devices) {
		t.Errorf("%d devices published, %d in the expected file, %d in the building", len(series), len(exp.Devices), len(o.Building.Devices))
	}

	// The expected totals match an independent recomputation from what arrived.
	for id, d := range exp.Devices {
		rs := series[id][d.Metric]
		if len(series[id]) != 2 {
			t.Errorf("%s: published metrics %v, want its energy counter and power", id, len(series[id]))
		}
		ts, vals := make([]int64, len(rs)), make([]float64, len(rs))
		drops := 0
		for i, r := range rs {
			ts[i], vals[i] = r.TS, r.Value
			if i > 0 && vals[i] < vals[i-1] {
				drops++
				if id == "garden-meter-main" && (time.UnixMilli(r.TS).Before(replaced) || vals[i] > 5) {
					t.Errorf("meter dropped to %v at %s, replaced at %s", vals[i], time.UnixMilli(r.TS), replaced)
				}
			}
		}
		if want := map[bool]int{true: 1, false: 0}[id == "garden-meter-main"]; drops != want {
			t.Errorf("%s: counter dropped %d times, want %d", id, drops, want)
		}
		e := newCounterEnergy(ts, vals, d.Rollover)
		total := 0.0
		for h := o.From; h.Before(o.To); h = h.Add(time.Hour) {
			key := h.In(shanghai).Format(time.RFC3339)
			want := e.at(h.Add(time.Hour)) - e.at(h)
			got, ok := d.Hourly[key]
			if !ok || math.Abs(got-want) > 1e-6 {
				t.Fatalf("%s hour %s: file says %v (present %v), recomputed %v", id, key, got, ok, want)
			}
			total += want
		}
		for day := o.From; day.Before(o.To); day = day.AddDate(0, 0, 1) {
			key := day.Format(time.DateOnly)
			want := e.at(day.AddDate(0, 0, 1)) - e.at(day)
			if math.Abs(d.Daily[key]-want) > 1e-6 {
				t.Errorf("%s day %s: file says %v, recomputed %v", id, key, d.Daily[key], want)
			}
		}
		if len(d.Hourly) != 72 || len(d.Daily) != 3 || math.Abs(d.TotalKWh-total) > 1e-6 {
			t.Errorf("%s: %d hours, %d days, total %v (recomputed %v)", id, len(d.Hourly), len(d.Daily), d.TotalKWh, total)
		}
		if d.First == nil || d.First.Value != vals[0] || d.Last.Value != vals[len(vals)-1] {
			t.Errorf("%s: first/last %v/%v, published %v/%v", id, d.First, d.Last, vals[0], vals[len(vals)-1])
		}
	}
	// Plausible energy: the main meter carries 35 kW of base load and more.
	for day, kwh := range exp.Devices["garden-meter-main"].Daily {
		if kwh < 35*0.5*24 || kwh > 35*24*2 {
			t.Errorf("garden meter used %v kWh on %s", kwh, day)
		}
	}
	if d := exp.Devices["garden-lighting-1"]; d.Hourly[o.From.Add(20*time.Hour).Format(time.RFC3339)] <= d.Hourly[o.From.Add(12*time.Hour).Format(time.RFC3339)] {
		t.Error("the lighting panel used no more at 20:00 than at noon")
	}

	// The file round-trips.
	path := filepath.Join(t.TempDir(), "expected.json")
	if err := exp.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadExpected(path)
	if err != nil || back.Devices["garden-meter-main"].Daily["2026-08-02"] != exp.Devices["garden-meter-main"].Daily["2026-08-02"] {
		t.Errorf("expected file does not read back: %v", err)
	}
}

func TestBackfillAllMetricsDecodeAsTheTemplateSays(t *testing.T) {
	broker := mqtttest.StartBroker(t)
	o := gardenOptions(t, broker)
	sub := mqtttest.Subscribe(t, broker, o.Gateway.Topic(protocol.KindTelemetry))
	o.To = o.From.Add(2 * time.Hour)
	o.Metrics = MetricsAll
	exp, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]map[string]bool{}
	for _, b := range received(t, sub, exp.Batches) {
		for _, r := range b.Readings {
			if metrics[r.Device] == nil {
				metrics[r.Device] = map[string]bool{}
			}
			metrics[r.Device][r.Metric] = true
			if r.Device == "garden-pump-1" && r.Metric == "setpoint_bar" && r.Value != 3 {
				t.Fatalf("pump setpoint %v", r.Value)
			}
		}
	}
	for _, d := range o.Building.Devices {
		tmpl := o.Templates[d.Template]
		want := len(tmpl.Points)
		if tmpl.MQTT != nil {
			want = len(tmpl.MQTT.Fields)
		}
		if len(metrics[d.ID]) != want {
			t.Errorf("%s: %d metrics published, template has %d", d.ID, len(metrics[d.ID]), want)
		}
	}
}

func TestBackfillOptionProblems(t *testing.T) {
	o := gardenOptions(t, "")
	o.To = o.From
	o.Interval = 7 * time.Second
	o.Step = 2 * time.Second
	o.Metrics = "some"
	o.Gateway.Company = "bad company"
	o.Replacements = []Replacement{{Device: "ghost", At: o.From.AddDate(1, 0, 0)}}
	o.Gaps = []Gap{{Device: "ghost2", From: o.From, To: o.From}}
	_, err := Run(context.Background(), o, nil)
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"gateway:", "from:", "step:", "metrics:", "broker:", `replace-meter[0]: unknown device "ghost"`,
		"replace-meter[0]: ", `gap[0]: unknown device "ghost2"`, "gap[0]: needs from < to"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	o = gardenOptions(t, "tcp://127.0.0.1:1")
	o.From = time.Now().Add(-time.Hour)
	o.To = time.Now().Add(time.Hour)
	if _, err := Run(context.Background(), o, nil); err == nil || !strings.Contains(err.Error(), "in the future") {
		t.Errorf("a period ending in the future: %v", err)
	}
	o.To = time.Now().Add(-time.Minute)
	if _, err := Run(context.Background(), o, nil); err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Errorf("no broker: %v", err)
	}
}
