package mqttin

import (
	"strconv"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// Mapping one device message costs about 10 µs on two shared cores; a
// plant room's devices send a few messages a second.
func BenchmarkMapTasmotaSensor(b *testing.B) {
	plug := templates(b)["tasmota-plug"]
	payload := []byte(tasmotaSensor)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rs, err := Map(plug, "garden-plug-1", "garden_garage", "tele/garden_garage/SENSOR", payload, now)
		if err != nil || len(rs) != 4 {
			b.Fatal(rs, err)
		}
	}
}

func BenchmarkMapShellyStatus(b *testing.B) {
	shelly := templates(b)["shelly-plus-1pm"]
	payload := []byte(shellyStatus)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rs, err := Map(shelly, "garden-shelly-1", "shellyplus1pm-garden01", "shellyplus1pm-garden01/status/switch:0", payload, now)
		if err != nil || len(rs) != 5 {
			b.Fatal(rs, err)
		}
	}
}

// The input's whole path for one message (routing, metrics, mapping,
// sink) without the network: 200 devices configured.
func BenchmarkHandle(b *testing.B) {
	ts := templates(b)
	devs := make([]Device, 0, 200)
	for i := range 200 {
		devs = append(devs, Device{ID: "plug-" + strconv.Itoa(i), Template: ts["tasmota-plug"], Topic: "plug_" + strconv.Itoa(i)})
	}
	n := 0
	in, err := New(Config{Embedded: &Embedded{Users: []User{{Username: "u", Password: "p"}}}}, devs,
		Options{Sink: func(rs []protocol.Reading) { n += len(rs) }, Log: discard})
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(tasmotaSensor)
	b.ReportAllocs()
	for b.Loop() {
		in.handle("tele/plug_117/SENSOR", payload, false)
	}
	if n == 0 {
		b.Fatal("no readings")
	}
}
