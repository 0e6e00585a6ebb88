package mqttin

import (
	"errors"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

func TestValidateDevices(t *testing.T) {
	ts := templates(t)
	plug := ts["tasmota-plug"]
	devs := []Device{
		{ID: "ok-1", Template: plug, Topic: "garden_garage"},
		{ID: "bad id", Template: plug, Topic: "a"},
		{ID: "ok-1", Template: plug, Topic: "b"},
		{ID: "c", Topic: "c"},
		{ID: "d", Template: ts["sdm630"], Topic: "d"},
		{ID: "e", Template: plug, Topic: "e/+"},
		{ID: "f", Template: plug, Topic: ""},
		{ID: "g", Template: plug, Topic: "$SYS"},
		{ID: "h", Template: plug, Topic: "h//1"},
		{ID: "i", Template: plug, Topic: "garden_garage"},
		{ID: "j", Template: plug, Topic: "site/j"},
	}
	var p config.Problems
	ValidateDevices(&p, "devices", devs)
	checkProblems(t, p.Err().(*config.ValidationError).Problems,
		`devices[1].id: invalid id: "bad id" has ' ' at offset 3 (allowed: A-Z a-z 0-9 - _)`,
		`devices[2].id: duplicate device id "ok-1"`,
		"devices[3].template: required",
		`devices[4].template: template "sdm630" is not an MQTT template`,
		`devices[5].topic: must not contain wildcards (+ #), got "e/+"`,
		`devices[6].topic: required, got ""`,
		`devices[7].topic: must not start with $, got "$SYS"`,
		`devices[8].topic: must not have empty topic levels, got "h//1"`,
		`devices[9].topic: topic "tele/garden_garage/SENSOR" is also device "ok-1"'s`)
}

func TestGatewayDevices(t *testing.T) {
	var org config.Org
	if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	ts := templates(t)
	for gw, want := range map[string]string{
		"gw-garden-1": "garden-plug-1:tasmota-plug:garden_garage garden-shelly-1:shelly-plus-1pm:shellyplus1pm-garden01",
		"gw-tower-1":  "tower-plug-1:tasmota-plug:tower_lobby",
	} {
		g, ok := org.FindGateway(gw)
		if !ok {
			t.Fatalf("no gateway %q in org.yaml", gw)
		}
		devs, err := GatewayDevices(g.Gateway, ts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range devs {
			got = append(got, d.ID+":"+d.Template.ID+":"+d.Topic)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: MQTT devices %v, want %s", gw, got, want)
		}
	}
	bad := &config.Gateway{Devices: []config.Device{
		{ID: "m", Template: "sdm630", Address: "tcp://127.0.0.1:502"},
		{ID: "p", Template: "tasmota-plug", Address: "tcp://127.0.0.1:1884"},
		{ID: "q", Template: "nope", Address: "mqtt:q"},
	}}
	_, err := GatewayDevices(bad, ts)
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a validation error", err)
	}
	checkProblems(t, ve.Problems,
		`devices[1].address: an MQTT device's address is "mqtt:<topic>", got "tcp://127.0.0.1:1884"`,
		`devices[2].template: unknown template "nope"`)
}
