package modbus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

func TestParseAddress(t *testing.T) {
	good := map[string]Address{
		"tcp://10.0.0.5:502":         {Transport: TransportTCP, HostPort: "10.0.0.5:502"},
		"tcp://meter.local":          {Transport: TransportTCP, HostPort: "meter.local:502"},
		"tcp://[::1]:1502":           {Transport: TransportTCP, HostPort: "[::1]:1502"},
		"rtuovertcp://10.0.0.6:4001": {Transport: TransportRTUOverTCP, HostPort: "10.0.0.6:4001"},
		"rtu:///dev/ttyUSB0":         {Transport: TransportRTU, Port: "/dev/ttyUSB0", BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1},
		"rtu:///dev/ttyS1?baud=19200&parity=e&data_bits=8&stop_bits=2": {Transport: TransportRTU, Port: "/dev/ttyS1",
			BaudRate: 19200, DataBits: 8, Parity: "E", StopBits: 2},
		"rtu://COM3?baud=38400": {Transport: TransportRTU, Port: "COM3", BaudRate: 38400, DataBits: 8, Parity: "N", StopBits: 1},
	}
	for s, want := range good {
		got, err := ParseAddress(s)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", s, got, err, want)
			continue
		}
		if again, err := ParseAddress(got.String()); err != nil || again != got {
			t.Errorf("ParseAddress(%q.String() = %q) = %+v, %v", s, got.String(), again, err)
		}
	}
	bad := map[string]string{
		"":                                 "want tcp://host:port",
		"10.0.0.5:502":                     "want tcp://host:port",
		"udp://10.0.0.5:502":               `unknown scheme "udp"`,
		"mqtt:garden_garage":               `unknown scheme "mqtt"`,
		"tcp://":                           "want tcp://host:port",
		"tcp://10.0.0.5:70000":             `port "70000"`,
		"tcp://10.0.0.5:":                  "empty port",
		"tcp://10.0.0.5:502/x":             "nothing else",
		"tcp://10.0.0.5:502?unit=1":        "nothing else",
		"rtuovertcp://10.0.0.6":            "needs a port",
		"rtu://":                           "no serial port",
		"rtu:///dev/ttyUSB0?baud=fast":     `baud "fast"`,
		"rtu:///dev/ttyUSB0?baud=100":      `baud "100"`,
		"rtu:///dev/ttyUSB0?parity=X":      `parity "X"`,
		"rtu:///dev/ttyUSB0?data_bits=5":   `data_bits "5"`,
		"rtu:///dev/ttyUSB0?stop_bits=3":   `stop_bits "3"`,
		"rtu:///dev/ttyUSB0?speed=9600":    `unknown parameter "speed"`,
		"rtu:///dev/ttyUSB0?baud=1&baud=2": "baud given 2 times",
	}
	for s, want := range bad {
		_, err := ParseAddress(s)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "cannot parse device address") {
			t.Errorf("ParseAddress(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func TestDeviceValidation(t *testing.T) {
	ts := shippedTemplates(t)
	ok := Device{ID: "pump-1", Template: ts["pump-vfd"], Address: "tcp://127.0.0.1:502", UnitID: 1}
	if err := validateDevices([]Device{ok}); err != nil {
		t.Fatalf("valid device: %v", err)
	}
	devs := []Device{
		{ID: "bad id", Template: ts["pump-vfd"], Address: "tcp://127.0.0.1:502", UnitID: 1},
		{ID: "plug", Template: ts["tasmota-plug"], Address: "tcp://127.0.0.1:502", UnitID: 2},
		{ID: "nothing", Address: "serial://x", UnitID: 3},
		{ID: "rtu-0", Template: ts["sdm630"], Address: "rtu:///dev/ttyUSB0", UnitID: 0},
		{ID: "rtu-1", Template: ts["sdm630"], Address: "rtu:///dev/ttyUSB0?baud=19200", UnitID: 1},
		{ID: "rtu-1b", Template: ts["sdm630"], Address: "rtu:///dev/ttyUSB0", UnitID: 1},
		{ID: "fast", Template: ts["elevator"], Address: "tcp://127.0.0.1:503", PollInterval: time.Millisecond, Timeout: 2 * time.Minute, Retries: 11},
		{ID: "fast", Template: ts["elevator"], Address: "rtuovertcp://127.0.0.1:504", UnitID: 5, SingleConnection: true, Retries: -1},
	}
	err := validateDevices(devs)
	if err == nil {
		t.Fatal("no error for bad devices")
	}
	for _, want := range []string{
		`devices[0].id: invalid id: "bad id"`,
		`devices[1].template: template "tasmota-plug" is a mqtt template, not modbus`,
		`devices[2].template: required`,
		`devices[2].address: cannot parse device address "serial://x": unknown scheme "serial"`,
		`devices[3].unit_id: must be 1–247 on an RTU bus, got 0`,
		`devices[4].address: serial port "/dev/ttyUSB0" runs at 9600 8N1 for device "rtu-0", not 19200 8N1`,
		`devices[5].unit_id: unit 1 at "rtu:///dev/ttyUSB0" is already device "rtu-1"`,
		`devices[6].poll_interval: must be at least 10ms, got 1ms`,
		`devices[6].timeout: must be between 10ms and 1m0s, got 2m0s`,
		`devices[6].retries: must be 0–10, got 11`,
		`devices[7].id: duplicate device id "fast"`,
		`devices[7].single_connection: applies to Modbus TCP only`,
		`devices[7].retries: must be 0–10, got -1`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	// NewPoller refuses the same list, and reports it as a configuration error.
	_, perr := NewPoller(devs, Options{Sink: func([]protocol.Reading) {}})
	var ve *config.ValidationError
	if perr == nil || !errors.As(perr, &ve) || len(ve.Problems) < 13 {
		t.Errorf("NewPoller: %v, want every problem", perr)
	}
}

func TestLinkKeys(t *testing.T) {
	ts := shippedTemplates(t)
	d := func(id, addr string, unit byte, single bool) Device {
		return Device{ID: id, Template: ts["pump-vfd"], Address: addr, UnitID: unit, SingleConnection: single}
	}
	keys := linkKeys([]Device{
		d("a", "tcp://127.0.0.1:1502", 1, false),
		d("b", "tcp://127.0.0.1:1502", 2, false),
		d("c", "tcp://127.0.0.1:1503", 1, false),
		d("d", "tcp://127.0.0.1:1503", 2, true), // one is enough for the address
		d("e", "rtuovertcp://127.0.0.1:4001", 1, false),
		d("f", "rtuovertcp://127.0.0.1:4001", 2, false),
		d("g", "rtu:///dev/ttyUSB0?baud=9600", 1, false),
		d("h", "rtu:///dev/ttyUSB0", 2, false),
	})
	same := [][2]string{{"c", "d"}, {"e", "f"}, {"g", "h"}}
	for _, s := range same {
		if keys[s[0]] != keys[s[1]] {
			t.Errorf("%s and %s should share a link: %q, %q", s[0], s[1], keys[s[0]], keys[s[1]])
		}
	}
	if keys["a"] == keys["b"] || keys["a"] == keys["c"] || keys["e"] == keys["g"] {
		t.Errorf("separate links expected: %v", keys)
	}
}
