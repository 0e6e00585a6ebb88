package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Pump fault codes (template states).
const (
	pumpFaultNone = iota
	pumpFaultDryRun
	pumpFaultOverTemp
	pumpFaultPressureLoss
)

// waterDemand is a residential booster set's flow demand as a fraction of
// its design flow, by local hour.
var waterDemand = [24]float64{
	0.08, 0.06, 0.05, 0.05, 0.06, 0.12, 0.45, 0.85, 0.75, 0.50, 0.40, 0.50,
	0.60, 0.45, 0.35, 0.35, 0.40, 0.60, 0.85, 0.95, 0.90, 0.75, 0.50, 0.25,
}

const pumpRepair = 2 * 3600.0 // seconds from a trip until a technician resets the drive

// pumpGroup is a duty/standby set sharing one outlet header: one pump runs,
// the other waits and takes over when the duty pump trips. Duty swaps daily
// at 02:00 local time so both pumps wear evenly.
type pumpGroup struct {
	r        *rand.Rand
	loc      *time.Location
	units    []*pumpUnit
	duty     int
	setpoint float64 // bar
	qmax     float64 // design flow m3/h
	h0       float64 // shut-off pressure at 50 Hz, bar
	kq       float64 // header loss coefficient, bar/(m3/h)²
	pressure float64
	flow     float64
	noise    wander
	pnoise   wander
	swapDay  int
}

// pumpUnit is one pump's drive. The first pump of a pair steps the group.
type pumpUnit struct {
	g           *pumpGroup
	idx         int
	r           *rand.Rand
	rated       float64
	running     bool
	freq        float64
	power       float64
	temp        float64
	fault       float64
	faultLeft   float64
	stopped     bool // stopped by hand (run_command 0): never runs, never takes duty
	pending     int  // developing fault, tripping after pendingLeft seconds
	pendingLeft float64
	runHours    *counter
	energy      *counter
	used        float64
	rate        float64
	nextF       time.Time
	cfg         *DeviceConfig
}

func newPumpUnit(d *DeviceConfig, t *config.Template, rate float64) *pumpUnit {
	u := &pumpUnit{
		rated: d.RatedKW, runHours: newCounter(t, "run_hours"), energy: newCounter(t, "energy_kwh"),
		rate: rate, temp: 28, cfg: d,
	}
	if u.rated == 0 {
		u.rated = 7.5
	}
	return u
}

// newPumpGroup joins units (lead first) into one duty/standby set.
func newPumpGroup(units []*pumpUnit, r *rand.Rand, loc *time.Location, start time.Time) *pumpGroup {
	sp := units[0].cfg.SetpointBar
	if sp == 0 {
		sp = 3.0
	}
	g := &pumpGroup{
		r: r, loc: loc, units: units, setpoint: sp, qmax: 40,
		h0: sp * 1.6, noise: wander{tau: 600, sigma: 0.08}, pnoise: wander{tau: 5, sigma: 0.015},
	}
	g.kq = 0.5 * sp / (g.qmax * g.qmax)
	g.pressure = sp
	for i, u := range units {
		u.g, u.idx, u.r = g, i, r
		u.nextF = nextRandom(r, start, u.rate)
	}
	return g
}

func (u *pumpUnit) step(t time.Time, dt float64) {
	if u.idx == 0 {
		u.g.step(t, dt)
	}
}

func (g *pumpGroup) step(t time.Time, dt float64) {
	local := t.In(g.loc)
	if day := local.YearDay(); local.Hour() == 2 && day != g.swapDay && len(g.units) > 1 {
		g.swapDay = day
		if other := (g.duty + 1) % len(g.units); g.units[other].available() {
			g.duty = other
		}
	}
	if !g.units[g.duty].available() { // standby takes over a tripped or stopped duty pump
		for i, u := range g.units {
			if u.available() {
				g.duty = i
				break
			}
		}
	}
	q := math.Max(0, g.qmax*dayProfile(&waterDemand, local)*(1+g.noise.step(g.r, dt)))
	pn := g.pnoise.step(g.r, dt)
	var duty *pumpUnit
	for i, u := range g.units {
		u.running = i == g.duty && u.available()
		if u.running {
			duty = u
		}
	}
	switch {
	case duty == nil: // nothing runs: the header falls to the static head
		g.flow = approach(g.flow, 0, 2, dt)
		g.pressure = approach(g.pressure, 0.6, 20, dt)
	case duty.pending == pumpFaultDryRun: // no water at the suction: no flow, no pressure
		duty.freq = approach(duty.freq, 50, 3, dt)
		g.flow = approach(g.flow, 0, 2, dt)
		g.pressure = approach(g.pressure, 0.3, 4, dt)
	case duty.pending == pumpFaultPressureLoss: // burst pipe: flow runs away, pressure collapses
		duty.freq = approach(duty.freq, 50, 3, dt)
		g.flow = approach(g.flow, g.qmax*1.6, 5, dt)
		g.pressure = approach(g.pressure, 0.8, 8, dt)
	default: // pressure control: the drive holds the setpoint against demand
		target := clamp(50*math.Sqrt((g.setpoint+g.kq*q*q)/g.h0), 30, 50)
		duty.freq = approach(duty.freq, target, 3, dt)
		if dt == 0 { // settling at the start: the set is already running
			duty.freq = target
		}
		g.flow = q
		g.pressure = math.Max(0, g.h0*(duty.freq/50)*(duty.freq/50)-g.kq*q*q+pn)
	}
	for _, u := range g.units {
		u.update(t, dt)
	}
}

// update computes a unit's electrical and thermal values after the group's
// hydraulics, advances its counters and trips or repairs it.
func (u *pumpUnit) update(t time.Time, dt float64) {
	g := u.g
	if !u.running {
		u.freq = approach(u.freq, 0, 1.5, dt)
		u.power = 0
	} else {
		load := 0.5 + 0.5*math.Min(g.flow/g.qmax, 1.2)
		if u.pending == pumpFaultDryRun {
			load = 0.3
		}
		r := u.freq / 50
		u.power = u.rated * r * r * r * load
	}
	tempTarget := 26 + 45*u.power/u.rated
	tau := 900.0
	if u.pending == pumpFaultOverTemp {
		tempTarget, tau = 130, 240
	}
	u.temp = approach(u.temp, tempTarget, tau, dt)
	if u.running {
		u.runHours.add(dt / 3600)
	}
	kwh := u.power * dt / 3600
	u.energy.add(kwh)
	u.used += kwh

	if u.fault != 0 {
		if u.faultLeft -= dt; u.faultLeft <= 0 {
			u.fault = pumpFaultNone
		}
		return
	}
	if u.pending == pumpFaultNone && u.running && !t.Before(u.nextF) {
		u.nextF = nextRandom(u.r, t, u.rate)
		u.develop(1 + u.r.IntN(3))
	}
	if u.pending != pumpFaultNone {
		u.pendingLeft -= dt
		if u.pendingLeft <= 0 || (u.pending == pumpFaultOverTemp && u.temp >= 100) {
			u.fault, u.faultLeft, u.pending = float64(u.pending), pumpRepair, pumpFaultNone
			u.running = false
		}
	}
}

// develop starts a fault: the drive trips after the fault has shown.
func (u *pumpUnit) develop(code int) {
	u.pending = code
	switch code {
	case pumpFaultDryRun:
		u.pendingLeft = 20
	case pumpFaultPressureLoss:
		u.pendingLeft = 90
	case pumpFaultOverTemp:
		u.pendingLeft = 1800 // trips at 100 °C well before this
	}
}

func (u *pumpUnit) values(v map[string]float64) {
	g := u.g
	current := 0.0
	if u.power > 0 {
		current = u.power * 1000 / (math.Sqrt(3) * 380 * 0.86)
	}
	flow := 0.0
	if u.running {
		flow = g.flow
	}
	v["running"] = b2f(u.running)
	v["frequency_hz"] = u.freq
	v["current_a"] = current
	v["power_kw"] = u.power
	v["outlet_pressure_bar"] = g.pressure
	v["setpoint_bar"] = g.setpoint
	v["flow_m3h"] = flow
	v["motor_temp_c"] = u.temp
	v["fault_code"] = u.fault
	v["duty"] = b2f(g.duty == u.idx)
	v["run_command"] = b2f(!u.stopped)
	v["run_hours"] = u.runHours.v
	v["energy_kwh"] = u.energy.v
}

// available reports whether the unit may run: not tripped, not stopped by hand.
func (u *pumpUnit) available() bool { return u.fault == 0 && !u.stopped }

// write executes a Modbus write to one of the drive's writable points (the
// caller checked it against the template): setpoint_bar sets the group's
// pressure setpoint, which the duty pump's control then follows;
// run_command 0 stops the pump by hand (a stopped duty pump hands over to
// the standby), 1 releases it to run when it has duty.
func (u *pumpUnit) write(metric string, v float64) error {
	switch metric {
	case "setpoint_bar":
		u.g.setpoint = v
	case "run_command":
		u.stopped = v == 0
	default:
		return fmt.Errorf("cannot write %s: not a writable point of a pump", metric)
	}
	return nil
}

func (u *pumpUnit) powerKW() float64     { return u.power }
func (u *pumpUnit) consumedKWh() float64 { return u.used }
func (u *pumpUnit) counters() map[string]*counter {
	return map[string]*counter{"run_hours": u.runHours, "energy_kwh": u.energy}
}

func (u *pumpUnit) event(name string, t time.Time) error {
	switch name {
	case "dry_run":
		u.develop(pumpFaultDryRun)
	case "over_temperature":
		u.develop(pumpFaultOverTemp)
	case "pressure_loss":
		u.develop(pumpFaultPressureLoss)
	case "clear":
		u.pending, u.fault, u.faultLeft = pumpFaultNone, pumpFaultNone, 0
	default:
		return unknownEvent(config.KindPump, name)
	}
	return nil
}
