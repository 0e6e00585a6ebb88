package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plantroom/plantroom/config"
)

// ErrUnknownDevice is returned for a device id the building does not have.
var ErrUnknownDevice = errors.New("unknown device")

// maxStepsPerTick bounds the model steps taken under the lock at once, so
// readers are never starved when the clock runs far ahead.
const maxStepsPerTick = 20000

// tick is how often a running clock's building catches up with the clock.
const tick = 50 * time.Millisecond

// Building is a running simulated building: its device models on a virtual
// clock, the Modbus servers and MQTT publishers that expose them, and the
// control API. New → Start → Stop.
type Building struct {
	cfg       *Config
	templates config.Templates
	log       *slog.Logger
	clock     *Clock
	step      time.Duration

	mu      sync.Mutex // guards the models, simTime and actions
	devices []*device  // in configuration order
	order   []*device  // step order: meters last
	byID    map[string]*device
	simTime time.Time
	actions []action

	runMu   sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	// saveOnStop: the state file was written at Start, write it at Stop.
	saveOnStop bool
	wg         sync.WaitGroup
	control    *controlServer
}

// device is one simulated device.
type device struct {
	cfg   *DeviceConfig
	tmpl  *config.Template
	model model

	fmu   sync.Mutex
	fault Fault

	snap   atomic.Pointer[snapshot]
	modbus *modbusServer // Modbus devices
	pub    *publisher    // MQTT devices
}

// snapshot is a device's state at one virtual instant; its register image
// is encoded on first use.
type snapshot struct {
	at      time.Time
	values  map[string]float64
	garbage bool
	once    sync.Once
	img     *registerImage
}

func (d *device) image() *registerImage {
	s := d.snap.Load()
	s.once.Do(func() { s.img = encodeImage(d.tmpl, s.values, s.garbage) })
	return s.img
}

func (d *device) currentFault() Fault {
	d.fmu.Lock()
	defer d.fmu.Unlock()
	return d.fault
}

// action is something scheduled at a virtual time: a scenario step or the
// end of a timed fault.
type action struct {
	at  time.Time
	do  func() (after func(), err error) // runs under b.mu; after runs once b.mu is released
	why string
}

// New checks the configuration against the templates and builds the
// device models; counters start from the state file when there is one,
// else from their initial values. Nothing listens until Start.
func New(cfg *Config, templates config.Templates, log *slog.Logger) (*Building, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var p config.Problems
	cfg.Validate(&p)
	if p.Len() == 0 {
		checkTemplates(cfg, templates, &p)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	start := cfg.Clock.Start
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	start = start.In(cfg.Location) // virtual times read in the building's zone
	b := &Building{
		cfg: cfg, templates: templates, log: log, step: cfg.Clock.Step.Duration,
		clock:   NewClock(start, cfg.Clock.Speed, cfg.Clock.Manual),
		byID:    map[string]*device{},
		simTime: start,
	}
	for i := range cfg.Devices {
		dc := &cfg.Devices[i]
		t := templates[dc.Template]
		m, err := newModel(dc, t, cfg.Location, newRand(cfg.Seed, dc.ID), start)
		if err != nil {
			return nil, err
		}
		d := &device{cfg: dc, tmpl: t, model: m}
		if dc.Fault != nil {
			d.fault = *dc.Fault
		}
		b.devices = append(b.devices, d)
		b.byID[dc.ID] = d
	}
	b.connectModels(start)
	for _, d := range b.devices {
		if d.tmpl.Kind != config.KindMeter {
			b.order = append(b.order, d)
		}
	}
	for _, d := range b.devices {
		if d.tmpl.Kind == config.KindMeter {
			b.order = append(b.order, d)
		}
		b.warnUnmodelled(d)
		for metric, v := range d.cfg.Initial {
			if c := d.model.counters()[metric]; c != nil {
				c.set(v)
			} else {
				b.log.Warn("initial value ignored: counter not simulated", "device", d.cfg.ID, "metric", metric)
			}
		}
		if d.tmpl.Protocol == config.ProtoModbus {
			d.modbus = newModbusServer(b, d)
		} else {
			d.pub = newPublisher(b, d)
		}
	}
	if err := b.restoreState(); err != nil { // counters kept by an earlier run
		return nil, err
	}
	for _, d := range b.order { // settle every model at the start time
		d.model.step(start, 0)
	}
	b.publish()
	return b, nil
}

// connectModels joins pumps into duty/standby groups and meters to their loads.
func (b *Building) connectModels(start time.Time) {
	grouped := map[string]bool{}
	for _, d := range b.devices {
		u, ok := d.model.(*pumpUnit)
		if !ok || grouped[d.cfg.ID] {
			continue
		}
		units := []*pumpUnit{u}
		grouped[d.cfg.ID] = true
		for _, o := range b.devices {
			if o == d || grouped[o.cfg.ID] || (o.cfg.ID != d.cfg.Pair && o.cfg.Pair != d.cfg.ID) {
				continue
			}
			units = append(units, o.model.(*pumpUnit))
			grouped[o.cfg.ID] = true
		}
		newPumpGroup(units, newRand(b.cfg.Seed, d.cfg.ID+"/group"), b.cfg.Location, start)
	}
	for _, d := range b.devices {
		m, ok := d.model.(*meter)
		if !ok {
			continue
		}
		var loads []model
		for _, o := range b.devices {
			named := len(d.cfg.Loads) == 0 && o.tmpl.Kind != config.KindMeter
			for _, id := range d.cfg.Loads {
				named = named || id == o.cfg.ID
			}
			if named && o != d {
				loads = append(loads, o.model)
			}
		}
		m.meterLoads(loads)
	}
}

// warnUnmodelled logs template metrics the device model does not produce;
// they are served as 0.
func (b *Building) warnUnmodelled(d *device) {
	v := map[string]float64{}
	d.model.values(v)
	for _, m := range templateMetrics(d.tmpl) {
		if _, ok := v[m]; !ok {
			b.log.Warn("template metric not simulated; it reads 0", "device", d.cfg.ID, "template", d.tmpl.ID, "metric", m)
		}
	}
}

// templateMetrics lists a template's metrics in template order.
func templateMetrics(t *config.Template) []string {
	var ms []string
	for _, pt := range t.Points {
		ms = append(ms, pt.Metric)
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			ms = append(ms, f.Metric)
		}
	}
	return ms
}

// advanceTo steps the models in fixed steps up to target, running the
// actions that fall due, then publishes new snapshots. It returns whether
// it reached target (false when it stopped after maxStepsPerTick).
func (b *Building) advanceTo(target time.Time) bool {
	var after []func()
	defer func() {
		for _, f := range after {
			f()
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	sec := b.step.Seconds()
	n := 0
	for !b.simTime.Add(b.step).After(target) && n < maxStepsPerTick {
		after = b.runActions(after)
		for _, d := range b.order {
			d.model.step(b.simTime, sec)
		}
		b.simTime = b.simTime.Add(b.step)
		n++
	}
	after = b.runActions(after)
	b.publishLocked()
	return n < maxStepsPerTick
}

// runActions runs every action due at simTime, in time order, and collects
// what must run once b.mu is released. b.mu is held.
func (b *Building) runActions(after []func()) []func() {
	for len(b.actions) > 0 && !b.actions[0].at.After(b.simTime) {
		a := b.actions[0]
		b.actions = b.actions[1:]
		f, err := a.do()
		if err != nil {
			b.log.Error("scheduled action failed", "action", a.why, "at", a.at, "error", err)
		}
		if f != nil {
			after = append(after, f)
		}
	}
	return after
}

// schedule adds an action at virtual time at. b.mu is held.
func (b *Building) schedule(at time.Time, why string, do func() (func(), error)) {
	b.actions = append(b.actions, action{at: at, do: do, why: why})
	sort.SliceStable(b.actions, func(i, j int) bool { return b.actions[i].at.Before(b.actions[j].at) })
}

func (b *Building) publish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publishLocked()
}

// publishLocked stores a fresh snapshot of every device. b.mu is held.
func (b *Building) publishLocked() {
	for _, d := range b.devices {
		v := make(map[string]float64, 16)
		d.model.values(v)
		d.snap.Store(&snapshot{at: b.simTime, values: v, garbage: d.currentFault().Garbage})
	}
}

// Now is the virtual time the device models have reached.
func (b *Building) Now() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.simTime
}

// Clock is the building's virtual clock.
func (b *Building) Clock() *Clock { return b.clock }

// Advance moves a manual clock forward by d and steps the models to it.
func (b *Building) Advance(d time.Duration) error {
	now, err := b.clock.Advance(d)
	if err != nil {
		return err
	}
	for !b.advanceTo(now) {
	}
	return nil
}

// Addr is the "host:port" a Modbus device listens on (the bound port for a
// port-0 configuration), or "" for MQTT devices and before Start.
func (b *Building) Addr(deviceID string) string {
	d := b.byID[deviceID]
	if d == nil || d.modbus == nil {
		return ""
	}
	return d.modbus.address()
}

// ControlAddr is the bound address of the control API, or "".
func (b *Building) ControlAddr() string {
	if b.control == nil {
		return ""
	}
	return b.control.address()
}

// Values returns a device's current metric values (a copy).
func (b *Building) Values(deviceID string) (map[string]float64, error) {
	d, err := b.device(deviceID)
	if err != nil {
		return nil, err
	}
	return maps.Clone(d.snap.Load().values), nil
}

func (b *Building) device(id string) (*device, error) {
	d := b.byID[id]
	if d == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownDevice, id)
	}
	return d, nil
}
