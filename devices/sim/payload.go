package sim

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
)

// MQTT formats the simulator speaks (template mqtt.format).
const (
	formatTasmota = "tasmota"
	formatShelly  = "shelly_gen2"
)

// message is one MQTT publication.
type message struct {
	topic    string
	payload  []byte
	retained bool
	onChange bool // publish only when the payload changed (Tasmota stat/…/POWER)
}

// energyDay tracks today's and yesterday's energy for Tasmota's Today and
// Yesterday fields.
type energyDay struct {
	day        string
	dayStart   float64
	yesterday  float64
	totalStart time.Time
}

func (e *energyDay) update(local time.Time, total float64) (today, yesterday float64) {
	d := local.Format(time.DateOnly)
	switch {
	case e.day == "":
		e.day, e.dayStart, e.totalStart = d, total, local
	case d != e.day:
		e.yesterday = total - e.dayStart
		e.day, e.dayStart = d, total
	}
	if total < e.dayStart { // meter reset
		e.dayStart = total
	}
	return total - e.dayStart, e.yesterday
}

// deviceMessages builds a lighting device's messages in its template's
// format at virtual time t. Fields the template maps are written from the
// metric values through the template (path, scale, offset, map), so a
// template change flows through; the rest of each document is the format's
// usual furniture.
func deviceMessages(t *config.Template, topic string, at time.Time, loc *time.Location, v map[string]float64, day *energyDay, garbage bool) []message {
	local := at.In(loc)
	docs := map[string]any{}
	changeOnly := map[string]bool{}
	var order []string
	add := func(pattern string, doc any, onChange bool) {
		docs[pattern] = doc
		order = append(order, pattern)
		changeOnly[pattern] = onChange
	}
	on := v["switch_on"] != 0
	switch t.MQTT.Format {
	case formatTasmota:
		today, yesterday := day.update(local, v["energy_kwh"])
		p := v["power_w"]
		add("tele/{topic}/SENSOR", map[string]any{
			"Time": local.Format("2006-01-02T15:04:05"),
			"ENERGY": map[string]any{
				"TotalStartTime": day.totalStart.Format("2006-01-02T15:04:05"),
				"Total":          round(v["energy_kwh"], 3),
				"Yesterday":      round(yesterday, 3),
				"Today":          round(today, 3),
				"Power":          round(p, 0),
				"ApparentPower":  round(p/0.95, 0),
				"ReactivePower":  round(p*0.33, 0),
				"Factor":         round(b2f(p > 0)*0.95, 2),
				"Voltage":        round(v["voltage_v"], 0),
				"Current":        round(v["current_a"], 3),
			},
		}, false)
		add("stat/{topic}/POWER", onOff(on), true)
	case formatShelly:
		add("{topic}/status/switch:0", map[string]any{
			"id": 0, "source": "timer", "output": on,
			"apower":  round(v["power_w"], 1),
			"voltage": round(v["voltage_v"], 1),
			"current": round(v["current_a"], 3),
			"aenergy": map[string]any{
				"total":     round(v["energy_kwh"]*1000, 3),
				"by_minute": []float64{round(v["power_w"]/60*1000, 3), 0, 0},
				"minute_ts": local.Truncate(time.Minute).Unix(),
			},
			"temperature": map[string]any{"tC": round(v["temperature_c"], 1), "tF": round(v["temperature_c"]*9/5+32, 1)},
		}, false)
	}
	for _, f := range t.MQTT.Fields {
		doc, ok := docs[f.Topic]
		if !ok {
			doc = map[string]any{}
			add(f.Topic, doc, false)
		}
		val := fieldValue(f, v[f.Metric], garbage)
		if f.Path == "" {
			docs[f.Topic] = val
			continue
		}
		if m, ok := doc.(map[string]any); ok {
			setPath(m, f.Path, val)
		}
	}
	out := make([]message, 0, len(order))
	for _, pattern := range order {
		var payload []byte
		switch d := docs[pattern].(type) {
		case string:
			payload = []byte(d)
		default:
			payload, _ = json.Marshal(d)
		}
		out = append(out, message{
			topic: strings.ReplaceAll(pattern, "{topic}", topic), payload: payload, onChange: changeOnly[pattern],
		})
	}
	return out
}

// fieldValue turns a metric value into the field's raw JSON value: the
// inverse of the template's map, or (value − offset) / scale.
func fieldValue(f config.MQTTField, v float64, garbage bool) any {
	if len(f.Map) > 0 {
		for k, mv := range f.Map {
			if mv == v {
				switch k {
				case "true":
					return true
				case "false":
					return false
				}
				return k
			}
		}
	}
	if garbage {
		return -1e12
	}
	return round((v-f.Offset)/config.EffectiveScale(f.Scale), 3)
}

// setPath sets a dotted path in a JSON object, creating objects on the way.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

func onOff(on bool) string {
	if on {
		return "ON"
	}
	return "OFF"
}

// presence returns a device's retained online/offline message (Tasmota LWT,
// Shelly online).
func presence(format, topic string, online bool) message {
	if format == formatShelly {
		p := "false"
		if online {
			p = "true"
		}
		return message{topic: topic + "/online", payload: []byte(p), retained: true}
	}
	p := "Offline"
	if online {
		p = "Online"
	}
	return message{topic: "tele/" + topic + "/LWT", payload: []byte(p), retained: true}
}
