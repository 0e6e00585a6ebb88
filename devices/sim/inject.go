package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
)

// SetFault makes a device misbehave until ClearFault. A Modbus device that
// becomes unreachable stops listening; switching single-connection mode
// restarts its server. MQTT devices know only Unreachable and Garbage.
func (b *Building) SetFault(deviceID string, f Fault) error {
	return b.SetFaultFor(deviceID, f, 0)
}

// SetFaultFor sets a fault that clears itself after d of virtual time
// (0: until ClearFault).
func (b *Building) SetFaultFor(deviceID string, f Fault, d time.Duration) error {
	dev, err := b.device(deviceID)
	if err != nil {
		return fmt.Errorf("cannot set fault: %w", err)
	}
	if err := b.checkFault(dev, f); err != nil {
		return err
	}
	b.mu.Lock()
	apply := b.setFaultLocked(dev, f)
	if d > 0 {
		b.schedule(b.simTime.Add(d), "clear fault of "+deviceID, func() (func(), error) {
			return b.logged(b.setFaultLocked(dev, Fault{}), "clear fault of "+deviceID), nil
		})
	}
	b.mu.Unlock()
	return apply()
}

func (b *Building) checkFault(d *device, f Fault) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("cannot set fault on %q: %w", d.cfg.ID, err)
	}
	if d.modbus == nil && f.modbusOnly() {
		return fmt.Errorf("cannot set fault on %q: an MQTT device can only be unreachable or send garbage", d.cfg.ID)
	}
	return nil
}

// setFaultLocked records a device's fault and returns what brings its
// server in line, to run after b.mu is released. b.mu is held.
func (b *Building) setFaultLocked(d *device, f Fault) func() error {
	d.fmu.Lock()
	d.fault = f
	d.fmu.Unlock()
	b.log.Info("device fault set", "device", d.cfg.ID, "unreachable", f.Unreachable, "delay", f.Delay,
		"exception", f.Exception, "garbage", f.Garbage, "single_connection", f.SingleConnection, "stuck_outputs", f.StuckOutputs,
		"virtual_time", b.simTime.Format(time.RFC3339))
	b.publishLocked()
	return func() error {
		if d.modbus != nil && b.isRunning() {
			return d.modbus.apply(d.currentFault())
		}
		return nil
	}
}

// ClearFault makes a device healthy again.
func (b *Building) ClearFault(deviceID string) error {
	return b.SetFault(deviceID, Fault{})
}

// Fault returns a device's current fault.
func (b *Building) Fault(deviceID string) (Fault, error) {
	d, err := b.device(deviceID)
	if err != nil {
		return Fault{}, err
	}
	return d.currentFault(), nil
}

// Event triggers a device behaviour: "trapped" and "release" (elevator
// passenger entrapment and rescue), "fault" and "clear" (elevator fault
// code), "dry_run", "over_temperature", "pressure_loss" and "clear" (pump),
// "on", "off" and "auto" (lighting), "replace_meter" (any device with a kWh
// counter).
func (b *Building) Event(deviceID, name string) error {
	d, err := b.device(deviceID)
	if err != nil {
		return fmt.Errorf("cannot trigger %q: %w", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eventLocked(d, name)
}

// eventLocked triggers an event. b.mu is held.
func (b *Building) eventLocked(d *device, name string) error {
	var err error
	if name == "replace_meter" {
		err = b.replaceMeter(d)
	} else {
		err = d.model.event(name, b.simTime)
	}
	if err != nil {
		return fmt.Errorf("device %q: %w", d.cfg.ID, err)
	}
	b.log.Info("device event", "device", d.cfg.ID, "event", name, "virtual_time", b.simTime.Format(time.RFC3339))
	b.publishLocked()
	return nil
}

// Trapped traps passengers in an elevator (released by rescue after 25
// virtual minutes, or by the "release" event).
func (b *Building) Trapped(deviceID string) error { return b.Event(deviceID, "trapped") }

// MeterReplaced swaps a device's energy meter for a new one: its kWh
// counters restart at 0 and count on from there.
func (b *Building) MeterReplaced(deviceID string) error { return b.Event(deviceID, "replace_meter") }

// replaceMeter resets every kWh counter of a device. b.mu is held.
func (b *Building) replaceMeter(d *device) error {
	n := 0
	for metric, c := range d.model.counters() {
		if unitOf(d.tmpl, metric) == "kWh" {
			c.set(0)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("cannot replace meter: template %q has no kWh counter", d.tmpl.ID)
	}
	return nil
}

// unitOf is the unit a template gives a metric.
func unitOf(t *config.Template, metric string) string {
	if pt := t.Point(metric); pt != nil {
		return pt.Unit
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric == metric {
				return f.Unit
			}
		}
	}
	return ""
}

func (b *Building) isRunning() bool {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	return b.started && !b.stopped
}

// DeviceStatus describes a device for the control API.
type DeviceStatus struct {
	ID       string             `json:"id"`
	Template string             `json:"template"`
	Kind     string             `json:"kind"`
	Addr     string             `json:"addr,omitempty"`
	Topic    string             `json:"topic,omitempty"`
	Fault    Fault              `json:"fault"`
	Time     time.Time          `json:"time"`
	Values   map[string]float64 `json:"values"`
}

// Devices describes every device, in configuration order.
func (b *Building) Devices() []DeviceStatus {
	out := make([]DeviceStatus, 0, len(b.devices))
	for _, d := range b.devices {
		s := d.snap.Load()
		out = append(out, DeviceStatus{
			ID: d.cfg.ID, Template: d.tmpl.ID, Kind: d.tmpl.Kind, Addr: b.Addr(d.cfg.ID), Topic: d.cfg.Topic,
			Fault: d.currentFault(), Time: s.at, Values: s.values,
		})
	}
	return out
}

// checkTemplates checks the devices against their templates: the template
// exists, the device is reachable the way the template speaks, and model
// parameters suit the kind.
func checkTemplates(c *Config, ts config.Templates, p *config.Problems) {
	byID := map[string]*DeviceConfig{}
	for i := range c.Devices {
		byID[c.Devices[i].ID] = &c.Devices[i]
	}
	kindOf := func(id string) string {
		if d := byID[id]; d != nil && ts[d.Template] != nil {
			return ts[d.Template].Kind
		}
		return ""
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		dp := config.Join("devices", i)
		t := ts[d.Template]
		if t == nil {
			p.Addf(config.Join(dp, "template"), "unknown template %q", d.Template)
			continue
		}
		switch t.Protocol {
		case config.ProtoModbus:
			if d.Listen == "" {
				p.Addf(config.Join(dp, "listen"), "required for Modbus template %q", t.ID)
			}
		case config.ProtoMQTT:
			if d.Topic == "" {
				p.Addf(config.Join(dp, "topic"), "required for MQTT template %q", t.ID)
			}
			if d.Listen != "" {
				p.Addf(config.Join(dp, "listen"), "not used by MQTT template %q", t.ID)
			}
			if f := t.MQTT.Format; f != formatTasmota && f != formatShelly {
				p.Addf(config.Join(dp, "template"), "cannot simulate MQTT format %q of template %q (want %s or %s)", f, t.ID, formatTasmota, formatShelly)
			}
			if d.Fault != nil && d.Fault.modbusOnly() {
				p.Addf(config.Join(dp, "fault"), "an MQTT device can only be unreachable or send garbage")
			}
		}
		param := func(name string, set bool, kinds ...string) {
			if set && !contains(kinds, t.Kind) {
				p.Addf(config.Join(dp, name), "not used by a %s (only %s)", t.Kind, strings.Join(kinds, ", "))
			}
		}
		param("rated_kw", d.RatedKW != 0, config.KindElevator, config.KindPump, config.KindLighting)
		param("base_load_kw", d.BaseLoadKW != 0, config.KindMeter)
		param("loads", len(d.Loads) > 0, config.KindMeter)
		param("pair", d.Pair != "", config.KindPump)
		param("setpoint_bar", d.SetpointBar != 0, config.KindPump)
		param("floors", d.Floors != nil, config.KindElevator)
		param("schedule", d.Schedule != nil, config.KindLighting)
		param("faults_per_day", d.FaultsPerDay != nil, config.KindElevator, config.KindPump)
		if d.Pair != "" && kindOf(d.Pair) != config.KindPump {
			p.Addf(config.Join(dp, "pair"), "%q is not a pump", d.Pair)
		}
		if o := byID[d.Pair]; o != nil && o.Pair != "" && o.Pair != d.ID {
			p.Addf(config.Join(dp, "pair"), "%q is paired with %q", d.Pair, o.Pair)
		}
		for j, l := range d.Loads {
			if kindOf(l) == config.KindMeter {
				p.Addf(config.Join(config.Join(dp, "loads"), j), "%q is a meter; a meter meters loads", l)
			}
		}
		for _, metric := range sortedMetrics(d.Initial) {
			if !isCounter(t, metric) {
				p.Addf(config.Join(config.Join(dp, "initial"), metric), "template %q has no counter %q", t.ID, metric)
			}
			if d.Initial[metric] < 0 {
				p.Addf(config.Join(config.Join(dp, "initial"), metric), "must be >= 0, got %v", d.Initial[metric])
			}
		}
	}
}

func isCounter(t *config.Template, metric string) bool {
	if pt := t.Point(metric); pt != nil {
		return pt.Counter
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric == metric {
				return f.Counter
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedMetrics(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
