// Package sim simulates a building's plant-room equipment: elevators, pumps,
// energy meters and lighting. Every Modbus device serves its template's
// register map over Modbus TCP (or RTU over TCP) on its own loopback port;
// MQTT lighting devices publish Tasmota or Shelly Gen2 messages to a broker.
// Behaviour models run on a virtual clock from a seed, so a run is
// reproducible and a month of device life takes seconds. Faults (device
// unreachable, slow answers, exception codes, garbage values, a single TCP
// connection) are injected from Go, from a scenario file or over a small
// local control API. README.md in devices/ documents the formats.
package sim

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Defaults applied by Validate where a value is not set.
const (
	DefaultTimeZone     = "Asia/Shanghai"
	DefaultTemplates    = "templates"
	DefaultBroker       = "tcp://127.0.0.1:1884"
	DefaultMQTTInterval = 10 * time.Second
	DefaultStep         = time.Second
	DefaultSpeed        = 1.0
	// DefaultStateInterval is the real time between two saves of the
	// counter state file while a building runs.
	DefaultStateInterval = 10 * time.Second
)

// Transports a Modbus device can serve.
const (
	TransportTCP        = "tcp"        // Modbus TCP (MBAP header)
	TransportRTUOverTCP = "rtuovertcp" // RTU frames with CRC over a TCP stream
)

// Config is a simulated building: its clock, its devices and where they
// serve. Build one in Go (tests) or load it with LoadConfig.
type Config struct {
	// Building names the simulated building; informational.
	Building string `yaml:"building"`
	// TimeZone of the building: schedules and demand profiles follow local time.
	TimeZone string `yaml:"time_zone"`
	// Seed makes a run reproducible: same seed, same start, same values.
	Seed  uint64      `yaml:"seed"`
	Clock ClockConfig `yaml:"clock"`
	// Templates is the directory of device templates, relative to the
	// configuration file. Only LoadConfig and the devsim command use it.
	Templates string `yaml:"templates"`
	// Control is the listen address of the control API ("127.0.0.1:15190");
	// empty: no control API.
	Control string     `yaml:"control"`
	MQTT    MQTTConfig `yaml:"mqtt"`
	// StateFile keeps the devices' cumulative counters across runs, as
	// real meters do (see State): read by New when it exists, written
	// every StateInterval while running and at Stop. LoadConfig makes it
	// relative to the configuration file. Empty: counters start from
	// their initial values on every run.
	StateFile string `yaml:"state_file"`
	// StateInterval is the real time between two saves of StateFile.
	StateInterval config.Duration `yaml:"state_interval"`
	Devices       []DeviceConfig  `yaml:"devices"`

	// Location is set by Validate from TimeZone.
	Location *time.Location `yaml:"-"`
}

// ClockConfig sets the virtual clock.
type ClockConfig struct {
	// Start is the virtual time at start; zero: the wall-clock time at New.
	Start time.Time `yaml:"start"`
	// Speed is virtual seconds per real second (1: real time; 86400: a day
	// per second). Ignored when Manual.
	Speed float64 `yaml:"speed"`
	// Manual stops the clock: only Building.Advance moves it (tests).
	Manual bool `yaml:"manual"`
	// Step is the fixed virtual time step of the device models. Values are a
	// function of the seed and the number of steps taken, so the same seed
	// gives the same values at the same virtual time.
	Step config.Duration `yaml:"step"`
}

// MQTTConfig is the broker MQTT lighting devices publish to.
type MQTTConfig struct {
	Broker   string `yaml:"broker"` // tcp://host:port
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Interval is the real time between two telemetry messages of a device
	// (Tasmota's TelePeriod).
	Interval config.Duration `yaml:"interval"`
}

// DeviceConfig is one simulated device. Model parameters are optional and
// valid only for the kinds noted.
type DeviceConfig struct {
	ID       string `yaml:"id"`
	Template string `yaml:"template"`
	// Listen is where a Modbus device serves ("127.0.0.1:15101"; port 0
	// picks a free port, see Building.Addr).
	Listen string `yaml:"listen"`
	// Transport is "tcp" (default) or "rtuovertcp".
	Transport string `yaml:"transport"`
	// UnitID the device answers to (default 1); 0 and 255 are accepted too
	// over Modbus TCP.
	UnitID int `yaml:"unit_id"`
	// Topic is an MQTT device's topic (Tasmota) or device id (Shelly).
	Topic string `yaml:"topic"`

	// RatedKW is the rated power: elevator traction motor, pump motor,
	// lighting connected load.
	RatedKW float64 `yaml:"rated_kw"`
	// BaseLoadKW (meter) is the building's load not simulated as a device.
	BaseLoadKW float64 `yaml:"base_load_kw"`
	// Loads (meter) are the devices it meters; default every other non-meter device.
	Loads []string `yaml:"loads"`
	// Pair (pump) is the other pump of a duty/standby pair.
	Pair string `yaml:"pair"`
	// SetpointBar (pump) is the outlet pressure setpoint.
	SetpointBar float64 `yaml:"setpoint_bar"`
	// Floors (elevator) is [lowest, highest], e.g. [-2, 18].
	Floors []int `yaml:"floors"`
	// Schedule (lighting) switches the circuits on and off by local time.
	Schedule *Schedule `yaml:"schedule"`
	// FaultsPerDay is the mean rate of random faults (elevator, pump);
	// nil: the kind's default, 0: none.
	FaultsPerDay *float64 `yaml:"faults_per_day"`
	// Initial sets counters at start, e.g. {energy_kwh: 42949600} to watch
	// a rollover.
	Initial map[string]float64 `yaml:"initial"`
	// Fault is active from the start.
	Fault *Fault `yaml:"fault"`
}

// Schedule switches lighting: on at On, off at Off (local "HH:MM"; Off
// before On runs past midnight).
type Schedule struct {
	On  string `yaml:"on"`
	Off string `yaml:"off"`
}

// PerDay returns a pointer to r, for DeviceConfig.FaultsPerDay.
func PerDay(r float64) *float64 { return &r }

// Validate checks the configuration on its own and applies defaults. New
// checks it again together with the templates.
func (c *Config) Validate(p *config.Problems) {
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		p.Addf("time_zone", "unknown time zone %q", c.TimeZone)
	}
	c.Location = loc
	if c.Clock.Speed == 0 {
		c.Clock.Speed = DefaultSpeed
	}
	if c.Clock.Speed < 0 {
		p.Addf("clock.speed", "must be > 0, got %v", c.Clock.Speed)
	}
	if c.Clock.Step.Duration == 0 {
		c.Clock.Step = config.D(DefaultStep)
	}
	if c.Clock.Step.Duration < 10*time.Millisecond || c.Clock.Step.Duration > time.Minute {
		p.Addf("clock.step", "must be between 10ms and 1m, got %s", c.Clock.Step)
	}
	if c.Templates == "" {
		c.Templates = DefaultTemplates
	}
	if c.Control != "" {
		checkListen(p, "control", c.Control)
	}
	if c.MQTT.Broker == "" {
		c.MQTT.Broker = DefaultBroker
	}
	if !strings.HasPrefix(c.MQTT.Broker, "tcp://") && !strings.HasPrefix(c.MQTT.Broker, "mqtt://") {
		p.Addf("mqtt.broker", "must be tcp://host:port, got %q", c.MQTT.Broker)
	}
	if c.MQTT.Interval.Duration == 0 {
		c.MQTT.Interval = config.D(DefaultMQTTInterval)
	}
	if c.MQTT.Interval.Duration < 10*time.Millisecond {
		p.Addf("mqtt.interval", "must be at least 10ms, got %s", c.MQTT.Interval)
	}
	if c.StateInterval.Duration == 0 {
		c.StateInterval = config.D(DefaultStateInterval)
	}
	if c.StateInterval.Duration < 10*time.Millisecond {
		p.Addf("state_interval", "must be at least 10ms, got %s", c.StateInterval)
	}
	if len(c.Devices) == 0 {
		p.Addf("devices", "at least one device is required")
	}
	ids := map[string]bool{}
	for i := range c.Devices {
		d := &c.Devices[i]
		dp := config.Join("devices", i)
		if err := protocol.CheckID(d.ID); err != nil {
			p.Add(config.Join(dp, "id"), err)
		}
		if ids[d.ID] {
			p.Addf(config.Join(dp, "id"), "duplicate device id %q", d.ID)
		}
		ids[d.ID] = true
		d.validate(p, dp)
	}
	for i, d := range c.Devices {
		dp := config.Join("devices", i)
		if d.Pair != "" && !ids[d.Pair] {
			p.Addf(config.Join(dp, "pair"), "unknown device %q", d.Pair)
		}
		if d.Pair == d.ID && d.ID != "" {
			p.Addf(config.Join(dp, "pair"), "a pump cannot pair with itself")
		}
		for j, l := range d.Loads {
			if !ids[l] {
				p.Addf(config.Join(config.Join(dp, "loads"), j), "unknown device %q", l)
			}
		}
	}
}

func (d *DeviceConfig) validate(p *config.Problems, dp string) {
	if d.Template == "" {
		p.Addf(config.Join(dp, "template"), "required")
	}
	if d.Transport == "" {
		d.Transport = TransportTCP
	}
	if d.Transport != TransportTCP && d.Transport != TransportRTUOverTCP {
		p.Addf(config.Join(dp, "transport"), "unknown transport %q (want tcp or rtuovertcp)", d.Transport)
	}
	if d.UnitID == 0 {
		d.UnitID = 1
	}
	if d.UnitID < 1 || d.UnitID > 247 {
		p.Addf(config.Join(dp, "unit_id"), "must be 1–247, got %d", d.UnitID)
	}
	if d.Listen != "" {
		checkListen(p, config.Join(dp, "listen"), d.Listen)
	}
	if d.Listen != "" && d.Topic != "" {
		p.Addf(config.Join(dp, "topic"), "a device has either listen (Modbus) or topic (MQTT), not both")
	}
	if d.Topic != "" && (strings.ContainsAny(d.Topic, "+#/ ") || len(d.Topic) > 64) {
		p.Addf(config.Join(dp, "topic"), "must be one topic level without wildcards, got %q", d.Topic)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"rated_kw", d.RatedKW}, {"base_load_kw", d.BaseLoadKW}, {"setpoint_bar", d.SetpointBar}} {
		if f.v < 0 {
			p.Addf(config.Join(dp, f.name), "must be >= 0, got %v", f.v)
		}
	}
	if d.SetpointBar > 10 {
		p.Addf(config.Join(dp, "setpoint_bar"), "must be at most 10 bar, got %v", d.SetpointBar)
	}
	if d.FaultsPerDay != nil && (*d.FaultsPerDay < 0 || *d.FaultsPerDay > 1000) {
		p.Addf(config.Join(dp, "faults_per_day"), "must be 0–1000, got %v", *d.FaultsPerDay)
	}
	if d.Floors != nil && (len(d.Floors) != 2 || d.Floors[0] >= d.Floors[1] || d.Floors[0] < -10 || d.Floors[1] > 200) {
		p.Addf(config.Join(dp, "floors"), "must be [lowest, highest] with -10 <= lowest < highest <= 200, got %v", d.Floors)
	}
	if s := d.Schedule; s != nil {
		if _, err := parseClock(s.On); err != nil {
			p.Add(config.Join(dp, "schedule.on"), err)
		}
		if _, err := parseClock(s.Off); err != nil {
			p.Add(config.Join(dp, "schedule.off"), err)
		}
	}
	if d.Fault != nil {
		d.Fault.validate(p, config.Join(dp, "fault"))
	}
}

func checkListen(p *config.Problems, path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.Addf(path, "must be host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.Addf(path, "invalid port in %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		p.Addf(path, "simulated devices listen on loopback only (127.0.0.1, ::1), got %q", addr)
	}
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// LoadConfig reads a building configuration file strictly and validates it.
// Templates and StateFile are made relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.LoadFile(path, &c); err != nil {
		return nil, err
	}
	if c.Templates == "" {
		c.Templates = DefaultTemplates
	}
	if !filepath.IsAbs(c.Templates) {
		c.Templates = filepath.Join(filepath.Dir(path), c.Templates)
	}
	if c.StateFile != "" && !filepath.IsAbs(c.StateFile) {
		c.StateFile = filepath.Join(filepath.Dir(path), c.StateFile)
	}
	return &c, nil
}
