package modbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
)

// BenchmarkDecode decodes one point of each type from a 125-register
// answer.
func BenchmarkDecode(b *testing.B) {
	data := make([]byte, 2*MaxRegisters)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	r := &Request{Register: config.RegHolding, Count: MaxRegisters}
	for _, typ := range []string{"bool", "int16", "uint16", "int32", "uint32", "float32", "float64"} {
		pt := &config.Point{Metric: "m", Register: config.RegHolding, Address: 40, Type: typ, ByteOrder: "little", WordOrder: "little", Scale: 0.01}
		if typ == "float32" || typ == "float64" {
			pt.ByteOrder, pt.WordOrder = "big", "big"
			data[80] = 0x40 // a finite float
		}
		b.Run(typ, func(b *testing.B) {
			for b.Loop() {
				if _, err := decodePoint(pt, r, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlan plans the SDM630 map and a 1000-point map.
func BenchmarkPlan(b *testing.B) {
	big := &config.Template{ID: "big", Protocol: config.ProtoModbus}
	for i := 0; i < 1000; i++ {
		big.Points = append(big.Points, config.Point{Metric: fmt.Sprintf("m%d", i), Register: config.RegInput,
			Address: uint16(1000 - i*3%1000), Type: "float32"})
	}
	for _, tm := range []*config.Template{shippedTemplates(b)["sdm630"], big} {
		b.Run(tm.ID, func(b *testing.B) {
			for b.Loop() {
				if _, err := Plan(tm, DefaultMaxGap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPollSDM630 polls a simulated SDM630 over loopback Modbus TCP
// as fast as it answers: one poll = two requests, 17 points decoded.
func BenchmarkPollSDM630(b *testing.B) {
	bld := startSim(b, sim.DeviceConfig{ID: "meter", Template: "sdm630"})
	rec := newRecorder()
	dev := simDevice(b, bld, "meter", "sdm630", "tcp", time.Hour)
	p, err := NewPoller([]Device{dev}, Options{MaxGap: DefaultMaxGap, Sink: rec.sink, Log: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	d := p.devices["meter"]
	ctx := b.Context()
	for b.Loop() {
		d.poll(ctx)
	}
	if s := d.snapshot(); len(s.Errors) != 0 || rec.count("meter") == 0 {
		b.Fatalf("polls failed: %+v", s)
	}
}
