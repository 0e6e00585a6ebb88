package energy

import (
	"fmt"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Energy categories of a report.
const (
	CategoryElevator = "elevator"
	CategoryPump     = "pump"
	CategoryLighting = "lighting"
	CategoryOther    = "other"
)

// Categories lists the categories in report order.
var Categories = []string{CategoryElevator, CategoryPump, CategoryLighting, CategoryOther}

// CategoryOf maps a device kind to its energy category: elevator, pump and
// lighting are their own; meter and other are "other".
func CategoryOf(kind string) string {
	switch kind {
	case config.KindElevator, config.KindPump, config.KindLighting:
		return kind
	}
	return CategoryOther
}

// Device is what the energy computation needs to know about one device.
type Device struct {
	ID       string
	Name     string
	Project  string
	Building string // "" when neither the device nor its gateway names one
	Kind     string
	Category string
	// MainMeter marks a device of kind meter: an incoming supply meter that
	// measures the loads of the other devices too. Reports list it but leave
	// it out of every sum, so nothing is counted twice.
	MainMeter bool
	Counter   string  // metric of the cumulative kWh counter; "" for none
	Rollover  float64 // value at which the counter wraps to 0; 0: never
	MaxKW     float64 // the most the metered load can draw (P of the counter walk)
	Power     string  // metric of the active power; "" for none
	PowerToKW float64 // factor turning the power metric into kW
	Poll      time.Duration
}

// ProjectDevices returns the devices of project p whose template names
// energy metrics, in configuration order. Devices without an energy
// template have no place in energy reports.
func ProjectDevices(b *config.Bundle, p *config.Project) ([]Device, error) {
	var out []Device
	for _, g := range p.Gateways {
		for _, d := range g.Devices {
			t := b.Templates[d.Template]
			if t == nil {
				return nil, fmt.Errorf("cannot list energy devices of project %q: device %q: unknown template %q", p.ID, d.ID, d.Template)
			}
			if t.Energy == nil {
				continue
			}
			dev := Device{
				ID: d.ID, Name: d.Name, Project: p.ID, Building: d.Building, Kind: d.Kind,
				Category:  CategoryOf(d.Kind),
				MainMeter: d.Kind == config.KindMeter,
				Counter:   t.Energy.Counter,
				Rollover:  rolloverOf(t, t.Energy.Counter),
				MaxKW:     t.Energy.MaxPowerKW,
				Power:     t.Energy.Power,
				PowerToKW: 1,
				Poll:      d.PollInterval.Duration,
			}
			if d.MaxPowerKW > 0 {
				dev.MaxKW = d.MaxPowerKW
			}
			if dev.Building == "" {
				dev.Building = g.Building
			}
			if t.Energy.PowerUnit == "W" {
				dev.PowerToKW = 0.001
			}
			if dev.Poll <= 0 {
				dev.Poll = config.DefaultPollInterval
			}
			out = append(out, dev)
		}
	}
	return out, nil
}

// rolloverOf is the rollover value the template declares for a metric.
func rolloverOf(t *config.Template, metric string) float64 {
	if metric == "" {
		return 0
	}
	if pt := t.Point(metric); pt != nil {
		return pt.Rollover
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric == metric {
				return f.Rollover
			}
		}
	}
	return 0
}
