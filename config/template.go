package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plantroom/plantroom/protocol"
)

// Register kinds of a Modbus point.
const (
	RegCoil     = "coil"     // function 01, 1 bit
	RegDiscrete = "discrete" // function 02, 1 bit
	RegHolding  = "holding"  // function 03, 16 bits
	RegInput    = "input"    // function 04, 16 bits
)

// Data types of a Modbus point and the number of 16-bit registers each takes.
var TypeRegisters = map[string]int{
	"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4,
}

// Template protocols.
const (
	ProtoModbus = "modbus"
	ProtoMQTT   = "mqtt"
)

// Template describes how to read one model of device: a Modbus register map
// or a mapping of MQTT message fields to metrics.
type Template struct {
	ID          string `yaml:"id"`
	Name        string `yaml:"name"`
	Kind        string `yaml:"kind"`
	Protocol    string `yaml:"protocol"`
	Description string `yaml:"description"`
	// Defaults for the points: "big" (Modbus standard) or "little".
	ByteOrder string      `yaml:"byte_order"`
	WordOrder string      `yaml:"word_order"` // "big" = high word first
	Points    []Point     `yaml:"points"`
	MQTT      *MQTTFormat `yaml:"mqtt"`
	// Energy names the metrics energy reports use for this device.
	Energy *EnergySpec `yaml:"energy"`
}

// EnergySpec names a template's energy metrics: a cumulative kWh counter
// and, where there is no counter, a power metric to integrate.
type EnergySpec struct {
	Counter string `yaml:"counter"` // metric of the cumulative kWh counter
	Power   string `yaml:"power"`   // metric of the active power
	// PowerUnit is "W" or "kW".
	PowerUnit string `yaml:"power_unit"`
	// MaxPowerKW is P, the most the metered load can draw, in kW. A counter
	// step that rises more than P × hours + 0.05 kWh is not plausible (see
	// docs/api.md, "Energy from counters"). Required with a counter; a
	// device may override it with its own max_power_kw.
	MaxPowerKW float64 `yaml:"max_power_kw"`
}

// Point is one Modbus value: where it lives and how to turn it into a metric.
// value = raw × scale + offset.
type Point struct {
	Metric    string  `yaml:"metric"`
	Register  string  `yaml:"register"`
	Address   uint16  `yaml:"address"` // 0-based protocol address
	Type      string  `yaml:"type"`
	Bit       *int    `yaml:"bit"` // for type bool on a holding/input register: bit 0–15
	ByteOrder string  `yaml:"byte_order"`
	WordOrder string  `yaml:"word_order"`
	Scale     float64 `yaml:"scale"` // 0 means 1
	Offset    float64 `yaml:"offset"`
	Unit      string  `yaml:"unit"`
	// Counter marks a cumulative, normally monotonic value (kWh, trips, run hours).
	Counter bool `yaml:"counter"`
	// Rollover is the value at which a counter wraps to 0 (0: never wraps).
	Rollover float64 `yaml:"rollover"`
	// Deadband: a change smaller than this is not reported before the heartbeat.
	Deadband    float64        `yaml:"deadband"`
	Description string         `yaml:"description"`
	States      map[int]string `yaml:"states"` // meaning of coded values
	// Min and Max bound the plausible values (after scale and offset);
	// readings outside are kept with bad quality (see ValidRange).
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// Registers is the number of 16-bit registers (or bits, for coils and
// discrete inputs) the point occupies.
func (pt *Point) Registers() int {
	if pt.Register == RegCoil || pt.Register == RegDiscrete {
		return 1
	}
	return TypeRegisters[pt.Type]
}

// MQTTFormat maps the messages of an MQTT device to metrics. "{topic}" in a
// field's topic stands for the device's configured topic.
type MQTTFormat struct {
	Format string      `yaml:"format"` // "tasmota", "shelly_gen2" or "json"; informational
	Fields []MQTTField `yaml:"fields"`
}

// MQTTField takes one value out of one message.
type MQTTField struct {
	Topic  string `yaml:"topic"`  // e.g. "tele/{topic}/SENSOR"
	Path   string `yaml:"path"`   // dotted JSON path, e.g. "ENERGY.Total"; empty: the whole payload
	Metric string `yaml:"metric"` // metric name
	// Map turns string values ("ON"/"OFF", true/false) into numbers.
	Map      map[string]float64 `yaml:"map"`
	Scale    float64            `yaml:"scale"` // 0 means 1
	Offset   float64            `yaml:"offset"`
	Unit     string             `yaml:"unit"`
	Counter  bool               `yaml:"counter"`
	Rollover float64            `yaml:"rollover"`
	Deadband float64            `yaml:"deadband"`
	Min      *float64           `yaml:"min"` // plausible values, as Point's
	Max      *float64           `yaml:"max"`
}

// EffectiveScale is Scale with 0 read as 1.
func EffectiveScale(s float64) float64 {
	if s == 0 {
		return 1
	}
	return s
}

// Validate checks a template.
func (t *Template) Validate(p *Problems) {
	checkID(p, "id", t.ID)
	if !contains(DeviceKinds, t.Kind) {
		p.Addf("kind", "unknown kind %q (want one of %s)", t.Kind, strings.Join(DeviceKinds, ", "))
	}
	if t.ByteOrder == "" {
		t.ByteOrder = "big"
	}
	if t.WordOrder == "" {
		t.WordOrder = "big"
	}
	checkOrder(p, "byte_order", t.ByteOrder)
	checkOrder(p, "word_order", t.WordOrder)
	metrics := map[string]bool{}
	metric := func(path, m string) {
		if err := protocol.CheckMetric(m); err != nil {
			p.Add(path, err)
		}
		if metrics[m] {
			p.Addf(path, "duplicate metric %q", m)
		}
		metrics[m] = true
	}
	switch t.Protocol {
	case ProtoModbus:
		if len(t.Points) == 0 {
			p.Addf("points", "a modbus template needs at least one point")
		}
		if t.MQTT != nil {
			p.Addf("mqtt", "not allowed in a modbus template")
		}
		for i := range t.Points {
			pt := &t.Points[i]
			pp := Join("points", i)
			metric(Join(pp, "metric"), pt.Metric)
			switch pt.Register {
			case RegCoil, RegDiscrete:
				if pt.Type == "" {
					pt.Type = "bool"
				}
				if pt.Type != "bool" {
					p.Addf(Join(pp, "type"), "a %s register holds a bool, not %q", pt.Register, pt.Type)
				}
			case RegHolding, RegInput:
				if _, ok := TypeRegisters[pt.Type]; !ok {
					p.Addf(Join(pp, "type"), "unknown type %q (want bool, int16, uint16, int32, uint32, float32 or float64)", pt.Type)
				}
				if pt.Type == "bool" && pt.Bit != nil && (*pt.Bit < 0 || *pt.Bit > 15) {
					p.Addf(Join(pp, "bit"), "must be 0–15, got %d", *pt.Bit)
				}
			default:
				p.Addf(Join(pp, "register"), "unknown register kind %q (want coil, discrete, holding or input)", pt.Register)
			}
			if pt.ByteOrder == "" {
				pt.ByteOrder = t.ByteOrder
			}
			if pt.WordOrder == "" {
				pt.WordOrder = t.WordOrder
			}
			checkOrder(p, Join(pp, "byte_order"), pt.ByteOrder)
			checkOrder(p, Join(pp, "word_order"), pt.WordOrder)
			if int(pt.Address)+pt.Registers() > 65536 {
				p.Addf(Join(pp, "address"), "point at %d with %d registers runs past 65535", pt.Address, pt.Registers())
			}
			checkCounter(p, pp, pt.Counter, pt.Rollover, pt.Deadband)
			checkRange(p, pp, pt.Min, pt.Max)
		}
	case ProtoMQTT:
		if t.MQTT == nil || len(t.MQTT.Fields) == 0 {
			p.Addf("mqtt.fields", "an mqtt template needs at least one field")
			break
		}
		if len(t.Points) > 0 {
			p.Addf("points", "not allowed in an mqtt template")
		}
		for i, f := range t.MQTT.Fields {
			fp := Join("mqtt.fields", i)
			metric(Join(fp, "metric"), f.Metric)
			if !strings.Contains(f.Topic, "{topic}") {
				p.Addf(Join(fp, "topic"), "must contain {topic}, got %q", f.Topic)
			}
			if strings.ContainsAny(strings.ReplaceAll(f.Topic, "{topic}", ""), "+#") {
				p.Addf(Join(fp, "topic"), "wildcards are not allowed, got %q", f.Topic)
			}
			checkCounter(p, fp, f.Counter, f.Rollover, f.Deadband)
			checkRange(p, fp, f.Min, f.Max)
		}
	default:
		p.Addf("protocol", "unknown protocol %q (want modbus or mqtt)", t.Protocol)
	}
	if e := t.Energy; e != nil {
		if e.Counter == "" && e.Power == "" {
			p.Addf("energy", "needs counter or power")
		}
		if e.Counter != "" && !metrics[e.Counter] {
			p.Addf("energy.counter", "unknown metric %q", e.Counter)
		}
		if e.Power != "" && !metrics[e.Power] {
			p.Addf("energy.power", "unknown metric %q", e.Power)
		}
		switch {
		case e.MaxPowerKW < 0 || math.IsNaN(e.MaxPowerKW) || math.IsInf(e.MaxPowerKW, 0):
			p.Addf("energy.max_power_kw", "must be a number > 0, got %v", e.MaxPowerKW)
		case e.Counter != "" && e.MaxPowerKW == 0:
			p.Addf("energy.max_power_kw", "required with energy.counter: the most the metered load can draw, in kW (e.g. 1.2 × the rated power)")
		}
		if e.Power != "" && e.PowerUnit != "W" && e.PowerUnit != "kW" {
			p.Addf("energy.power_unit", "must be W or kW, got %q", e.PowerUnit)
		}
	}
}

func checkOrder(p *Problems, path, o string) {
	if o != "big" && o != "little" {
		p.Addf(path, "unknown order %q (want big or little)", o)
	}
}

func checkCounter(p *Problems, path string, counter bool, rollover, deadband float64) {
	if rollover < 0 {
		p.Addf(Join(path, "rollover"), "must be >= 0, got %v", rollover)
	}
	if rollover > 0 && !counter {
		p.Addf(Join(path, "rollover"), "only a counter can roll over (set counter: true)")
	}
	if deadband < 0 {
		p.Addf(Join(path, "deadband"), "must be >= 0, got %v", deadband)
	}
}

// Point returns the template's point for a metric, or nil.
func (t *Template) Point(metric string) *Point {
	for i := range t.Points {
		if t.Points[i].Metric == metric {
			return &t.Points[i]
		}
	}
	return nil
}

// Templates maps template id to template.
type Templates map[string]*Template

// LoadTemplates reads every *.yaml file in dir as one template. Problems of
// all files are reported together, each prefixed with its file name.
func LoadTemplates(dir string) (Templates, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("cannot list templates in %q: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("cannot load templates: no *.yaml files in %q", dir)
	}
	sort.Strings(files)
	ts := Templates{}
	var all Problems
	for _, f := range files {
		var t Template
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read template: %w", err)
		}
		if err := Decode(data, &t); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				for _, pr := range ve.Problems {
					all.list = append(all.list, f+": "+pr)
				}
			} else {
				all.Add(f, err)
			}
			continue
		}
		if prev, dup := ts[t.ID]; dup {
			all.Addf(f, "duplicate template id %q (also %q)", t.ID, prev.Name)
			continue
		}
		ts[t.ID] = &t
	}
	if err := all.Err(); err != nil {
		return nil, err
	}
	return ts, nil
}
