package agent

import (
	"strings"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/edge/modbus"
	"github.com/plantroom/plantroom/edge/mqttin"
	"github.com/plantroom/plantroom/edge/report"
)

// deviceSet is the configured devices, resolved against the templates.
type deviceSet struct {
	modbus []modbus.Device
	mqtt   []mqttin.Device
	specs  map[string]map[string]report.Spec // device → metric → report spec
	byID   map[string]DeviceConfig
}

// buildDevices resolves every device's template and checks the devices
// with the Modbus rules; every problem is recorded with its path.
func buildDevices(p *config.Problems, c *Config, ts config.Templates) *deviceSet {
	set := &deviceSet{specs: map[string]map[string]report.Spec{}, byID: map[string]DeviceConfig{}}
	topics := map[string]string{}
	for i, d := range c.Devices {
		dp := config.Join("devices", i)
		set.byID[d.ID] = d
		t := ts[d.Template]
		if t == nil {
			p.Addf(config.Join(dp, "template"), "unknown template %q (not in %q)", d.Template, c.Templates)
			continue
		}
		set.specs[d.ID] = report.Specs(t)
		if d.IsMQTT() {
			if t.Protocol != config.ProtoMQTT {
				p.Addf(config.Join(dp, "template"), "template %q is a %s template; an mqtt: address needs an mqtt one", d.Template, t.Protocol)
				continue
			}
			topic := strings.TrimPrefix(d.Address, mqttin.AddressPrefix)
			if other, dup := topics[topic]; dup {
				p.Addf(config.Join(dp, "address"), "topic %q is already device %q's", topic, other)
			}
			topics[topic] = d.ID
			set.mqtt = append(set.mqtt, mqttin.Device{ID: d.ID, Template: t, Topic: topic})
			continue
		}
		if t.Protocol != config.ProtoModbus {
			p.Addf(config.Join(dp, "template"), "template %q is an %s template; a Modbus address needs a modbus one (or use address \"mqtt:<topic>\")", d.Template, t.Protocol)
			continue
		}
		md := modbus.Device{
			ID: d.ID, Template: t, Address: d.Address, UnitID: byte(d.UnitID),
			PollInterval: d.PollInterval.Duration, Timeout: d.Timeout.Duration,
			Retries: d.Retries, SingleConnection: d.SingleConnection,
		}
		md.Validate(p, dp)
		set.modbus = append(set.modbus, md)
	}
	return set
}

// changed lists the devices of next that are new or configured
// differently from s, and those of s that are gone.
func (s *deviceSet) changed(next *deviceSet) []string {
	var out []string
	for id, d := range next.byID {
		if old, ok := s.byID[id]; !ok || old != d {
			out = append(out, id)
		}
	}
	for id := range s.byID {
		if _, ok := next.byID[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}
