package mqttin

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Reference payloads (device-formats.md): what real devices publish.
const (
	tasmotaSensor = `{"Time":"2026-10-01T12:00:00","ENERGY":{"TotalStartTime":"2026-01-01T00:00:00","Total":123.456,"Yesterday":1.234,"Today":0.567,"Power":60,"ApparentPower":65,"ReactivePower":25,"Factor":0.92,"Voltage":230,"Current":0.283}}`
	shellyStatus  = `{"id":0,"source":"timer","output":true,"apower":8.9,"voltage":237.5,"current":0.068,"aenergy":{"total":6532.1,"by_minute":[45.2,47.1,88.4],"minute_ts":1654511972},"temperature":{"tC":23.5}}`
)

// arrival is a message's arrival time: a different day from the Tasmota
// payload's own Time, so a reading stamped with the device time would show.
var arrival = time.Date(2026, 10, 3, 4, 5, 6, 789_000_000, time.UTC)

func TestMap(t *testing.T) {
	ts := templates(t)
	plug, shelly := ts["tasmota-plug"], ts["shelly-plus-1pm"]
	type want map[string]float64
	cases := []struct {
		name    string
		tmpl    *config.Template
		topic   string
		payload string
		want    want
		causes  []string // causes of the errors, in field order
	}{
		{"tasmota SENSOR", plug, "tele/garden_garage/SENSOR", tasmotaSensor,
			want{"energy_kwh": 123.456, "power_w": 60, "voltage_v": 230, "current_a": 0.283}, nil},
		{"tasmota POWER ON", plug, "stat/garden_garage/POWER", "ON", want{"switch_on": 1}, nil},
		{"tasmota POWER OFF", plug, "stat/garden_garage/POWER", "OFF", want{"switch_on": 0}, nil},
		{"tasmota POWER other case", plug, "stat/garden_garage/POWER", " on\n", want{"switch_on": 1}, nil},
		{"tasmota POWER quoted JSON", plug, "stat/garden_garage/POWER", `"OFF"`, want{"switch_on": 0}, nil},
		{"tasmota POWER unknown word", plug, "stat/garden_garage/POWER", "TOGGLE", want{}, []string{"unusable"}},
		{"tasmota POWER empty", plug, "stat/garden_garage/POWER", "", want{}, nil},
		{"tasmota LWT is no field", plug, "tele/garden_garage/LWT", "Online", want{}, nil},
		{"another device's topic", plug, "tele/tower_lobby/SENSOR", tasmotaSensor, want{}, nil},
		{"tasmota STATE is not mapped", plug, "tele/garden_garage/STATE", `{"POWER":"ON"}`, want{}, nil},
		{"shelly status, Wh to kWh", shelly, "shellyplus1pm-garden01/status/switch:0", shellyStatus,
			want{"energy_kwh": 6.5321, "power_w": 8.9, "voltage_v": 237.5, "switch_on": 1, "temperature_c": 23.5}, nil},
		{"shelly output false", shelly, "shellyplus1pm-garden01/status/switch:0", `{"output":false}`, want{"switch_on": 0}, nil},
		{"missing fields skipped", plug, "tele/garden_garage/SENSOR", `{"Time":"2026-10-01T12:00:00","ENERGY":{"Power":5}}`,
			want{"power_w": 5}, nil},
		{"missing object skipped", plug, "tele/garden_garage/SENSOR", `{"Time":"2026-10-01T12:00:00"}`, want{}, nil},
		{"null skipped", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Total":null,"Power":7}}`, want{"power_w": 7}, nil},
		{"path through a scalar skipped", plug, "tele/garden_garage/SENSOR", `{"ENERGY":5}`, want{}, nil},
		{"numeric strings", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Total":"12.5","Power":" 40 ","Voltage":"-1e2"}}`,
			want{"energy_kwh": 12.5, "power_w": 40, "voltage_v": -100}, nil},
		{"NaN-ish strings", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Total":"NaN","Power":"Infinity","Voltage":"230.5","Current":"-inf"}}`,
			want{"voltage_v": 230.5}, []string{"value", "value", "value"}},
		{"overflowing number", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Total":1e400,"Power":12}}`,
			want{"power_w": 12}, []string{"value"}},
		{"unusable values", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Total":"abc","Power":{"a":1},"Voltage":[230],"Current":"0x10"}}`,
			want{}, []string{"unusable", "unusable", "unusable", "unusable"}},
		{"bool without map", plug, "tele/garden_garage/SENSOR", `{"ENERGY":{"Power":true}}`, want{"power_w": 1}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic := "garden_garage"
			if c.tmpl == shelly {
				topic = "shellyplus1pm-garden01"
			}
			rs, err := Map(c.tmpl, "dev-1", topic, c.topic, []byte(c.payload), arrival)
			got := map[string]float64{}
			for _, r := range rs {
				if r.Device != "dev-1" || r.TS != arrival.UnixMilli() || r.Quality != protocol.QualityGood {
					t.Errorf("reading %+v: want device dev-1, arrival time %d, good quality", r, arrival.UnixMilli())
				}
				if _, dup := got[r.Metric]; dup {
					t.Errorf("metric %q twice", r.Metric)
				}
				got[r.Metric] = r.Value
			}
			if len(got) != len(c.want) {
				t.Errorf("readings %v, want %v", got, c.want)
			}
			for m, v := range c.want {
				if g, ok := got[m]; !ok || math.Abs(g-v) > 1e-9 {
					t.Errorf("%s = %v (present %v), want %v", m, g, ok, v)
				}
			}
			causes := fieldCauses(t, err)
			if strings.Join(causes, ",") != strings.Join(c.causes, ",") {
				t.Errorf("error causes %v, want %v (error: %v)", causes, c.causes, err)
			}
		})
	}
}

// fieldCauses lists the cause of every field error err joins.
func fieldCauses(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not a list of field errors", err)
	}
	var out []string
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) || fe.Metric == "" {
			t.Errorf("%v is not a *FieldError naming its metric", e)
		}
		out = append(out, Cause(e))
	}
	return out
}

func TestMapMalformedJSON(t *testing.T) {
	plug := templates(t)["tasmota-plug"]
	for _, p := range []string{`{"ENERGY":{"Total":1`, `{"ENERGY":{}} {}`, `ENERGY.Total=5`, ``, `{"ENERGY":{"Total":1.5.2}}`} {
		rs, err := Map(plug, "plug", "garden_garage", "tele/garden_garage/SENSOR", []byte(p), arrival)
		if !errors.Is(err, ErrMalformed) || Cause(err) != "malformed" || len(rs) != 0 {
			t.Errorf("payload %q: readings %v, error %v; want no readings and ErrMalformed", p, rs, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"plug"`) {
			t.Errorf("error %q does not name the device", err)
		}
	}
}

// A template with scale, offset, a map over bools and an array path: the
// value arithmetic on its own.
func TestMapArithmetic(t *testing.T) {
	tmpl := &config.Template{ID: "custom", Protocol: config.ProtoMQTT, MQTT: &config.MQTTFormat{Format: "json", Fields: []config.MQTTField{
		{Topic: "site/{topic}/data", Path: "t", Metric: "temp_k", Offset: 273.15},
		{Topic: "site/{topic}/data", Path: "wh", Metric: "energy_kwh", Scale: 0.001, Offset: 10},
		{Topic: "site/{topic}/data", Path: "alarm", Metric: "alarm", Map: map[string]float64{"true": 5, "false": 2}},
		{Topic: "site/{topic}/data", Path: "minutes.1", Metric: "minute_wh"},
		{Topic: "site/{topic}/data", Path: "huge", Metric: "huge", Scale: 1e10},
		{Topic: "site/{topic}/level", Path: "", Metric: "level", Scale: 0.5},
	}}}
	rs, err := Map(tmpl, "d", "x1", "site/x1/data",
		[]byte(`{"t":20,"wh":1500,"alarm":false,"minutes":[1,2.5,3],"huge":1e300}`), arrival)
	got := map[string]float64{}
	for _, r := range rs {
		got[r.Metric] = r.Value
	}
	want := map[string]float64{"temp_k": 293.15, "energy_kwh": 11.5, "alarm": 2, "minute_wh": 2.5}
	for m, v := range want {
		if math.Abs(got[m]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", m, got[m], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("readings %v, want %v", got, want)
	}
	if c := fieldCauses(t, err); len(c) != 1 || c[0] != "value" {
		t.Errorf("causes %v, want one value error for 1e300 × 1e10 (error %v)", c, err)
	}
	rs, err = Map(tmpl, "d", "x1", "site/x1/level", []byte("42.5"), arrival)
	if err != nil || len(rs) != 1 || rs[0].Value != 21.25 {
		t.Errorf("whole-payload number: %v, %v; want level 21.25", rs, err)
	}
	rs, err = Map(tmpl, "d", "x1", "site/x1/level", []byte("nan"), arrival)
	if len(rs) != 0 || Cause(err) != "value" {
		t.Errorf("whole-payload nan: %v, %v; want a value error", rs, err)
	}
}

func TestAvailability(t *testing.T) {
	ts := templates(t)
	if got := AvailabilityTopic(ts["tasmota-plug"], "garden_garage"); got != "tele/garden_garage/LWT" {
		t.Errorf("tasmota availability topic %q", got)
	}
	if got := AvailabilityTopic(ts["shelly-plus-1pm"], "shellyplus1pm-garden01"); got != "shellyplus1pm-garden01/online" {
		t.Errorf("shelly availability topic %q", got)
	}
	if got := AvailabilityTopic(&config.Template{MQTT: &config.MQTTFormat{Format: "json"}}, "x"); got != "" {
		t.Errorf("json format has availability topic %q", got)
	}
	for p, want := range map[string]bool{"Online": true, "Offline": false, "true": true, "false": false, " ONLINE\n": true} {
		if got, err := ParseAvailability([]byte(p)); err != nil || got != want {
			t.Errorf("ParseAvailability(%q) = %v, %v; want %v", p, got, err, want)
		}
	}
	for _, p := range []string{"", "1", "maybe", `{"online":true}`} {
		if _, err := ParseAvailability([]byte(p)); !errors.Is(err, ErrAvailability) || Cause(err) != "availability" {
			t.Errorf("ParseAvailability(%q): error %v, want ErrAvailability", p, err)
		}
	}
}

func TestCause(t *testing.T) {
	for err, want := range map[error]string{
		ErrMalformed: "malformed", ErrValue: "value", ErrUnusable: "unusable",
		ErrTooLarge: "too_large", ErrAvailability: "availability", errors.New("x"): "other",
	} {
		if got := Cause(&FieldError{Metric: "m", Err: err}); got != want {
			t.Errorf("Cause(%v) = %q, want %q", err, got, want)
		}
	}
}

// A finite absurd value (the plug's ENERGY.Total of 1.7e308, a negative
// counter) is kept with bad quality; the cloud leaves it out of energy,
// latest values and alarms.
func TestMapOutOfRangeIsBadQuality(t *testing.T) {
	plug := templates(t)["tasmota-plug"]
	rs, err := Map(plug, "plug", "garden_garage", "tele/garden_garage/SENSOR", []byte(`{"ENERGY":{"Total":1.7e308,"Power":60,"Voltage":230}}`), arrival)
	if err != nil {
		t.Fatal(err)
	}
	q := map[string]protocol.Quality{}
	for _, r := range rs {
		q[r.Metric] = r.Quality
	}
	if q["energy_kwh"] != protocol.QualityBad || q["power_w"] != protocol.QualityGood || len(rs) != 3 {
		t.Errorf("readings %+v: want energy_kwh bad, the others good", rs)
	}
	rs, _ = Map(plug, "plug", "garden_garage", "tele/garden_garage/SENSOR", []byte(`{"ENERGY":{"Total":-3,"Power":9000}}`), arrival)
	for _, r := range rs {
		if r.Quality != protocol.QualityBad {
			t.Errorf("%s = %v: quality %d, want bad", r.Metric, r.Value, r.Quality)
		}
	}
}
