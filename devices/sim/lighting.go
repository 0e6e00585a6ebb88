package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/plantroom/plantroom/config"
)

// circuit is one switched lighting circuit. It follows its schedule unless
// switched by hand (a coil write, an "on"/"off" event); a manual switch holds
// until the schedule next changes the circuit's state.
type circuit struct {
	ratedW   float64
	on, off  int // minutes after local midnight; on == off: always on
	state    bool
	manual   *bool
	lastSche bool
}

func (c *circuit) scheduled(local time.Time) bool {
	if c.on == c.off {
		return true
	}
	m := local.Hour()*60 + local.Minute()
	if c.on < c.off {
		return m >= c.on && m < c.off
	}
	return m >= c.on || m < c.off
}

func (c *circuit) update(local time.Time) {
	s := c.scheduled(local)
	if s != c.lastSche {
		c.manual = nil // the schedule takes over at its next edge
		c.lastSche = s
	}
	c.state = s
	if c.manual != nil {
		c.state = *c.manual
	}
}

// lights is the common part of a panel and a plug: circuits, supply
// voltage and the energy counter.
type lights struct {
	r        *rand.Rand
	loc      *time.Location
	circuits []*circuit
	volt     wander
	flicker  wander
	voltage  float64
	factor   float64 // lamp output wander
	power    float64 // W
	energy   *counter
	used     float64
}

func newLights(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand, shares []float64, defaultKW float64) lights {
	on, off := 18*60, 7*60
	if s := d.Schedule; s != nil {
		on, _ = parseClock(s.On)
		off, _ = parseClock(s.Off)
	}
	rated := d.RatedKW * 1000
	if rated == 0 {
		rated = defaultKW * 1000
	}
	l := lights{r: r, loc: loc, volt: wander{tau: 120, sigma: 1.5}, flicker: wander{tau: 60, sigma: 0.01}, voltage: 230, factor: 1}
	l.energy = newCounter(t, "energy_kwh")
	for i, share := range shares {
		c := &circuit{ratedW: rated * share, on: on, off: off}
		switch i { // a panel's circuits: 0 follows the schedule, 1 runs all day
		case 1:
			c.on, c.off = 0, 0
		case 2: // landscape lighting, off at 23:00
			c.off = 23 * 60
		case 3: // car park: on a little earlier, off a little later
			c.on, c.off = (on+24*60-30)%(24*60), (off+30)%(24*60)
		}
		l.circuits = append(l.circuits, c)
	}
	return l
}

func (l *lights) step(t time.Time, dt float64) {
	local := t.In(l.loc)
	l.voltage = 230 + l.volt.step(l.r, dt)
	l.factor = 1 + l.flicker.step(l.r, dt)
	for _, c := range l.circuits {
		c.update(local)
	}
	l.recompute()
	kwh := l.power / 1000 * dt / 3600
	l.energy.add(kwh)
	l.used += kwh
}

// recompute sets the power from the circuits' states.
func (l *lights) recompute() {
	l.power = 0
	for _, c := range l.circuits {
		if c.state {
			l.power += c.ratedW * l.factor * (l.voltage / 230) * (l.voltage / 230)
		}
	}
}

func (l *lights) powerKW() float64     { return l.power / 1000 }
func (l *lights) consumedKWh() float64 { return l.used }
func (l *lights) counters() map[string]*counter {
	return map[string]*counter{"energy_kwh": l.energy}
}

// switchCircuit switches circuit i by hand.
func (l *lights) switchCircuit(i int, on bool) error {
	if i < 0 || i >= len(l.circuits) {
		return fmt.Errorf("cannot switch circuit %d: the device has %d", i+1, len(l.circuits))
	}
	l.circuits[i].manual = &on
	l.circuits[i].state = on
	l.recompute()
	return nil
}

func (l *lights) event(name string, t time.Time) error {
	for i, c := range l.circuits {
		switch name {
		case "on", "off":
			if err := l.switchCircuit(i, name == "on"); err != nil {
				return err
			}
		case "auto":
			c.manual = nil
			c.update(t.In(l.loc))
			l.recompute()
		default:
			return unknownEvent(config.KindLighting, name)
		}
	}
	return nil
}

// panel is a lighting distribution panel with switched circuits (coils
// circuitN_on) and a built-in meter.
type panel struct{ lights }

func newPanel(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand) *panel {
	n := 0
	for i := 1; t.Point(fmt.Sprintf("circuit%d_on", i)) != nil; i++ {
		n = i
	}
	if n == 0 {
		n = 1
	}
	shares := []float64{0.4, 0.3, 0.2, 0.1}
	if n != 4 {
		shares = make([]float64, n)
		for i := range shares {
			shares[i] = 1 / float64(n)
		}
	}
	return &panel{newLights(d, t, loc, r, shares, 6)}
}

func (p *panel) values(v map[string]float64) {
	for i, c := range p.circuits {
		v[fmt.Sprintf("circuit%d_on", i+1)] = b2f(c.state)
	}
	v["power_w"] = p.power
	v["voltage_v"] = p.voltage
	v["energy_kwh"] = p.energy.v
}

// plug is a single switched circuit with a meter: a Tasmota plug or relay,
// a Shelly Plus 1PM.
type plug struct {
	lights
	temp wander
}

func newPlug(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand) *plug {
	return &plug{lights: newLights(d, t, loc, r, []float64{1}, 0.2), temp: wander{tau: 600, sigma: 1}}
}

func (p *plug) step(t time.Time, dt float64) {
	p.lights.step(t, dt)
	p.temp.step(p.r, dt)
}

func (p *plug) values(v map[string]float64) {
	on := p.circuits[0].state
	v["switch_on"] = b2f(on)
	v["power_w"] = p.power
	v["voltage_v"] = p.voltage
	v["current_a"] = p.power / p.voltage / 0.95
	v["energy_kwh"] = p.energy.v
	v["temperature_c"] = 38 + p.power/60 + p.temp.x
}
