package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

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
	// Writable marks a point the cloud may command (see Write). Only coils
	// and holding registers can be writable, never on an elevator.
	Writable bool `yaml:"writable"`
	// Allowed enumerates the values a command may write; empty means any
	// value within Min … Max. A writable coil allows 0 and 1.
	Allowed []float64 `yaml:"allowed"`
	// ReadBack names the metric read after a write to confirm it; empty
	// means the point itself.
	ReadBack string `yaml:"read_back"`
	// Expiry is how long a command to this point stays valid after it was
	// issued (default DefaultCommandExpiry): a command that reaches the
	// gateway later is rejected, not executed.
	Expiry Duration `yaml:"expiry"`
}

// DefaultCommandExpiry is a writable point's Expiry when none is set;
// MaxCommandExpiry bounds it.
const (
	DefaultCommandExpiry = 60 * time.Second
	MaxCommandExpiry     = time.Hour
)

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
	// Writable marks the relay of a Tasmota or Shelly Gen2 device (format
	// tasmota or shelly_gen2): the field's on/off state (its Map) may be
	// commanded, 1 switching the relay on and 0 off. The gateway publishes
	// the device's own command and reads the state back from this field.
	Writable bool `yaml:"writable"`
	// Allowed and Expiry as a Point's; a relay allows 0 and 1.
	Allowed []float64 `yaml:"allowed"`
	Expiry  Duration  `yaml:"expiry"`
}

// MQTT formats whose relay the gateway can command.
const (
	FormatTasmota = "tasmota"
	FormatShelly  = "shelly_gen2"
)

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
			checkWritable(p, pp, t.Kind, pt)
		}
		for i := range t.Points {
			if rb := t.Points[i].ReadBack; rb != "" && !metrics[rb] {
				p.Addf(Join(Join("points", i), "read_back"), "unknown metric %q", rb)
			}
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
			checkRelay(p, fp, t.Kind, t.MQTT.Format, &t.MQTT.Fields[i])
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

// checkWritable checks a point's write settings and fills in the defaults:
// a coil allows 0 and 1, the expiry is DefaultCommandExpiry.
func checkWritable(p *Problems, path, kind string, pt *Point) {
	if !pt.Writable {
		if len(pt.Allowed) > 0 || pt.ReadBack != "" || pt.Expiry.Duration != 0 {
			p.Addf(Join(path, "writable"), "allowed, read_back and expiry need writable: true")
		}
		return
	}
	if kind == KindElevator {
		p.Addf(Join(path, "writable"), "an elevator is never writable (its GB/T 24476 data is for monitoring only)")
		return
	}
	switch {
	case pt.Register == RegCoil:
		if len(pt.Allowed) == 0 {
			pt.Allowed = []float64{0, 1}
		}
		for i, v := range pt.Allowed {
			if v != 0 && v != 1 {
				p.Addf(Join(Join(path, "allowed"), i), "a coil takes 0 or 1, got %v", v)
			}
		}
	case pt.Register == RegHolding && pt.Type == "bool" && pt.Bit != nil:
		p.Addf(Join(path, "writable"), "a bit inside a holding register cannot be written on its own")
	case pt.Register == RegHolding:
		if len(pt.Allowed) == 0 && (pt.Min == nil || pt.Max == nil) {
			p.Addf(Join(path, "writable"), "a writable holding register needs min and max, or allowed values")
		}
		for i, v := range pt.Allowed {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				p.Addf(Join(Join(path, "allowed"), i), "must be a finite number, got %v", v)
			}
		}
	default:
		p.Addf(Join(path, "writable"), "only a coil or a holding register can be written (register: %s)", pt.Register)
	}
	switch d := pt.Expiry.Duration; {
	case d == 0:
		pt.Expiry.Duration = DefaultCommandExpiry
	case d < time.Second || d > MaxCommandExpiry:
		p.Addf(Join(path, "expiry"), "must be 1s … %s, got %s", MaxCommandExpiry, d)
	}
}

// checkRelay checks a writable MQTT field (a Tasmota or Shelly relay) and
// fills in its defaults as checkWritable does for a Modbus point.
func checkRelay(p *Problems, path, kind, format string, f *MQTTField) {
	if !f.Writable {
		if len(f.Allowed) > 0 || f.Expiry.Duration != 0 {
			p.Addf(Join(path, "writable"), "allowed and expiry need writable: true")
		}
		return
	}
	if kind == KindElevator {
		p.Addf(Join(path, "writable"), "an elevator is never writable (its GB/T 24476 data is for monitoring only)")
		return
	}
	if format != FormatTasmota && format != FormatShelly {
		p.Addf(Join(path, "writable"), "only the relay of a %s or %s device can be written (mqtt.format: %q)", FormatTasmota, FormatShelly, format)
	}
	if len(f.Map) == 0 || f.Scale != 0 && f.Scale != 1 || f.Offset != 0 {
		p.Addf(Join(path, "writable"), "a writable relay is an on/off state: it needs a map (e.g. {\"ON\": 1, \"OFF\": 0}) and no scale or offset")
	}
	if len(f.Allowed) == 0 {
		f.Allowed = []float64{0, 1}
	}
	for i, v := range f.Allowed {
		if v != 0 && v != 1 {
			p.Addf(Join(Join(path, "allowed"), i), "a relay takes 0 or 1, got %v", v)
		}
	}
	switch d := f.Expiry.Duration; {
	case d == 0:
		f.Expiry.Duration = DefaultCommandExpiry
	case d < time.Second || d > MaxCommandExpiry:
		p.Addf(Join(path, "expiry"), "must be 1s … %s, got %s", MaxCommandExpiry, d)
	}
}

// WritePoint returns the point a command to metric writes: a Modbus point,
// or for a writable MQTT relay field a point describing it (register
// "relay"); nil when the template has neither.
func (t *Template) WritePoint(metric string) *Point {
	if pt := t.Point(metric); pt != nil {
		return pt
	}
	if f := t.Relay(metric); f != nil {
		return &Point{Metric: f.Metric, Register: RegRelay, Type: "bool", Writable: true,
			Allowed: f.Allowed, Expiry: f.Expiry, Min: f.Min, Max: f.Max, Unit: f.Unit}
	}
	return nil
}

// RegRelay is the register kind of the point WritePoint returns for an MQTT
// relay field.
const RegRelay = "relay"

// Relay returns the writable MQTT field of metric, or nil.
func (t *Template) Relay(metric string) *MQTTField {
	if t.MQTT == nil {
		return nil
	}
	for i := range t.MQTT.Fields {
		if f := &t.MQTT.Fields[i]; f.Metric == metric && f.Writable {
			return f
		}
	}
	return nil
}

// Errors of CheckWrite, for callers that map them to answers.
var (
	ErrUnknownPoint = errors.New("unknown point")
	ErrNotWritable  = errors.New("point is not writable")
	ErrWriteValue   = errors.New("value not allowed")
)

// CheckWrite reports whether value may be written to the template's point
// metric: the point exists, is writable, and the value is finite and one of
// Allowed or within Min … Max. The cloud checks a command with it before
// sending, the gateway again before executing.
func (t *Template) CheckWrite(metric string, value float64) (*Point, error) {
	pt := t.WritePoint(metric)
	if pt == nil {
		return nil, fmt.Errorf("cannot write %q: %w in template %q", metric, ErrUnknownPoint, t.ID)
	}
	if !pt.Writable || t.Kind == KindElevator {
		return nil, fmt.Errorf("cannot write %q: %w (template %q)", metric, ErrNotWritable, t.ID)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return nil, fmt.Errorf("cannot write %v to %q: %w (not a finite number)", value, metric, ErrWriteValue)
	}
	if len(pt.Allowed) > 0 {
		for _, a := range pt.Allowed {
			if a == value {
				return pt, nil
			}
		}
		return nil, fmt.Errorf("cannot write %v to %q: %w (allowed: %v)", value, metric, ErrWriteValue, pt.Allowed)
	}
	if (pt.Min != nil && value < *pt.Min) || (pt.Max != nil && value > *pt.Max) {
		return nil, fmt.Errorf("cannot write %v to %q: %w (range %s … %s)", value, metric, ErrWriteValue, bound(pt.Min), bound(pt.Max))
	}
	return pt, nil
}

func bound(v *float64) string {
	if v == nil {
		return "open"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// CommandExpiry is how long a command to the point stays valid.
func (pt *Point) CommandExpiry() time.Duration {
	if pt.Expiry.Duration <= 0 {
		return DefaultCommandExpiry
	}
	return pt.Expiry.Duration
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
