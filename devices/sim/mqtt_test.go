package sim

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/internal/mqtttest"
)

func mqttBuilding(t *testing.T) (*Building, *mqtttest.Subscriber, string) {
	broker := mqtttest.StartBroker(t)
	sub := mqtttest.Subscribe(t, broker, "#")
	cfg := &Config{
		Seed:  3,
		Clock: ClockConfig{Start: testStart.Add(12 * time.Hour), Manual: true}, // 20:00, lights on
		MQTT:  MQTTConfig{Broker: broker, Username: "devsim", Password: "devsim-demo", Interval: config.D(20 * time.Millisecond)},
		Devices: []DeviceConfig{
			{ID: "plug", Template: "tasmota-plug", Topic: "garden_garage", RatedKW: 0.4, Initial: map[string]float64{"energy_kwh": 2873.412}},
			{ID: "shelly", Template: "shelly-plus-1pm", Topic: "shellyplus1pm-garden01", RatedKW: 0.25},
		},
	}
	b := startBuilding(t, cfg)
	if err := b.Advance(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	return b, sub, broker
}

// waitFor waits for a message on topic whose payload satisfies ok.
func waitFor(t *testing.T, sub *mqtttest.Subscriber, topic string, ok func(p []byte) bool) []byte {
	t.Helper()
	var got []byte
	eventually(t, 10*time.Second, "a message on "+topic, func() bool {
		m, found := sub.Last(topic)
		got = m.Payload
		return found && ok(m.Payload)
	})
	return got
}

func anyPayload([]byte) bool { return true }

func TestTasmotaMessages(t *testing.T) {
	b, sub, broker := mqttBuilding(t)
	want, _ := b.Values("plug")
	var sensor struct {
		Time   string
		ENERGY struct {
			TotalStartTime                 string
			Total, Yesterday, Today        float64
			Power, ApparentPower, Voltage  float64
			Current, Factor, ReactivePower float64
		}
	}
	waitFor(t, sub, "tele/garden_garage/SENSOR", func(p []byte) bool {
		return json.Unmarshal(p, &sensor) == nil && sensor.ENERGY.Total >= want["energy_kwh"]-0.001
	})
	if _, err := time.Parse("2006-01-02T15:04:05", sensor.Time); err != nil {
		t.Errorf("Time %q is not Tasmota's local time format", sensor.Time)
	}
	if sensor.Time != "2026-09-16T20:10:00" {
		t.Errorf("Time = %q, want the virtual local time 2026-09-16T20:10:00", sensor.Time)
	}
	if e := sensor.ENERGY; math.Abs(e.Total-want["energy_kwh"]) > 0.0006 || e.Total < 2873.412 ||
		math.Abs(e.Power-want["power_w"]) > 0.6 || e.Power < 300 || e.Voltage < 200 || e.Current <= 0 {
		t.Errorf("ENERGY = %+v, model %v", e, want)
	}
	if p := waitFor(t, sub, "stat/garden_garage/POWER", anyPayload); string(p) != "ON" {
		t.Errorf("POWER = %q, want ON", p)
	}
	if p := waitFor(t, sub, "tele/garden_garage/LWT", anyPayload); string(p) != "Online" {
		t.Errorf("LWT = %q, want Online", p)
	}
	// The LWT is retained: a late subscriber sees it at once.
	late := mqtttest.Subscribe(t, broker, "tele/+/LWT")
	if p := waitFor(t, late, "tele/garden_garage/LWT", anyPayload); string(p) != "Online" {
		t.Errorf("retained LWT = %q", p)
	}

	// Switched off by hand: POWER follows.
	if err := b.Event("plug", "off"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, "stat/garden_garage/POWER", func(p []byte) bool { return string(p) == "OFF" })

	// Garbage: impossible numbers.
	if err := b.SetFault("plug", Fault{Garbage: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, "tele/garden_garage/SENSOR", func(p []byte) bool {
		return json.Unmarshal(p, &sensor) == nil && sensor.ENERGY.Total < 0
	})
	// Unreachable: the device says Offline and stops publishing.
	if err := b.SetFault("plug", Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, "tele/garden_garage/LWT", func(p []byte) bool { return string(p) == "Offline" })
	n := sub.Count("tele/garden_garage/SENSOR")
	if err := b.ClearFault("plug"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, "tele/garden_garage/LWT", func(p []byte) bool { return string(p) == "Online" })
	eventually(t, 10*time.Second, "telemetry after coming back", func() bool { return sub.Count("tele/garden_garage/SENSOR") > n })
	if err := b.SetFault("plug", Fault{Delay: time.Second}); err == nil {
		t.Error("a slow-answer fault was accepted for an MQTT device")
	}
}

func TestShellyMessages(t *testing.T) {
	b, sub, _ := mqttBuilding(t)
	want, _ := b.Values("shelly")
	var st struct {
		ID      int     `json:"id"`
		Output  bool    `json:"output"`
		APower  float64 `json:"apower"`
		Voltage float64 `json:"voltage"`
		Current float64 `json:"current"`
		AEnergy struct {
			Total    float64 `json:"total"`
			MinuteTS int64   `json:"minute_ts"`
		} `json:"aenergy"`
		Temperature struct {
			TC float64 `json:"tC"`
		} `json:"temperature"`
	}
	waitFor(t, sub, "shellyplus1pm-garden01/status/switch:0", func(p []byte) bool {
		return json.Unmarshal(p, &st) == nil && st.AEnergy.Total >= want["energy_kwh"]*1000-0.001
	})
	if !st.Output || math.Abs(st.APower-want["power_w"]) > 0.06 || st.APower < 200 {
		t.Errorf("output %v, apower %v W; model %v", st.Output, st.APower, want)
	}
	if math.Abs(st.AEnergy.Total-want["energy_kwh"]*1000) > 0.001 {
		t.Errorf("aenergy.total = %v Wh, model %v kWh", st.AEnergy.Total, want["energy_kwh"])
	}
	if st.Voltage < 200 || st.Temperature.TC < 20 || st.AEnergy.MinuteTS != testStart.Add(12*time.Hour+10*time.Minute).Unix() {
		t.Errorf("status = %+v", st)
	}
	if p := waitFor(t, sub, "shellyplus1pm-garden01/online", anyPayload); string(p) != "true" {
		t.Errorf("online = %q, want true", p)
	}
	if err := b.SetFault("shelly", Fault{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sub, "shellyplus1pm-garden01/online", func(p []byte) bool { return string(p) == "false" })
}
