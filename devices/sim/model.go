package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/plantroom/plantroom/config"
)

// model is the behaviour of one kind of device. The building steps every
// model with the same fixed virtual step; a model's random numbers come from
// its own source seeded by the building seed and the device id, so values do
// not depend on the order or number of other devices.
type model interface {
	// step advances the model by dt seconds from virtual time t.
	step(t time.Time, dt float64)
	// values writes the current metric values, keyed by template metric.
	values(v map[string]float64)
	// powerKW is the active power drawn now.
	powerKW() float64
	// consumedKWh is the energy drawn since the start, never reset or
	// wrapped (the meter adds up its loads with it).
	consumedKWh() float64
	// counters are the model's cumulative counters by metric.
	counters() map[string]*counter
	// event triggers a named behaviour ("trapped", "dry_run", …).
	event(name string, t time.Time) error
}

// Events each kind of device understands, for errors and documentation.
var kindEvents = map[string][]string{
	config.KindElevator: {"trapped", "release", "fault", "clear"},
	config.KindPump:     {"dry_run", "over_temperature", "pressure_loss", "clear"},
	config.KindMeter:    {},
	config.KindLighting: {"on", "off", "auto"},
}

// Default random fault rates per kind (faults per device per virtual day).
var defaultFaultsPerDay = map[string]float64{
	config.KindElevator: 0.05,
	config.KindPump:     0.02,
}

func unknownEvent(kind, name string) error {
	return fmt.Errorf("cannot trigger %q: a %s knows %q", name, kind, kindEvents[kind])
}

// counter is a cumulative value that wraps at rollover (0: never).
type counter struct {
	v        float64
	rollover float64
}

func (c *counter) add(d float64) {
	c.v += d
	if c.rollover > 0 {
		for c.v >= c.rollover {
			c.v -= c.rollover
		}
	}
}

// set puts the counter at v, wrapped into its range.
func (c *counter) set(v float64) {
	c.v = 0
	c.add(v)
}

// newCounter makes a counter for metric with the template's rollover.
func newCounter(t *config.Template, metric string) *counter {
	return &counter{rollover: rolloverOf(t, metric)}
}

// rolloverOf is the rollover a template declares for a metric (0: none).
func rolloverOf(t *config.Template, metric string) float64 {
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

// newRand gives a device its own random source from the building seed.
func newRand(seed uint64, deviceID string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(deviceID))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// wander is a mean-reverting random walk (Ornstein–Uhlenbeck process): slow
// noise with standard deviation sigma and correlation time tau seconds.
type wander struct {
	x, tau, sigma float64
}

func (w *wander) step(r *rand.Rand, dt float64) float64 {
	a := math.Exp(-dt / w.tau)
	w.x = w.x*a + w.sigma*math.Sqrt(1-a*a)*r.NormFloat64()
	return w.x
}

// dayProfile interpolates an hourly table (24 values, index = local hour)
// at local time t.
func dayProfile(table *[24]float64, t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60 + float64(t.Second())/3600
	i := int(h) % 24
	f := h - math.Floor(h)
	return table[i]*(1-f) + table[(i+1)%24]*f
}

// nextRandom returns the time of the next random event of a Poisson process
// with rate perDay after t; the far future when the rate is 0.
func nextRandom(r *rand.Rand, t time.Time, perDay float64) time.Time {
	if perDay <= 0 {
		return t.AddDate(1000, 0, 0)
	}
	return t.Add(time.Duration(r.ExpFloat64() / perDay * float64(24*time.Hour)))
}

// approach moves x toward target with time constant tau seconds.
func approach(x, target, tau, dt float64) float64 {
	return target + (x-target)*math.Exp(-dt/tau)
}

func clamp(x, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, x))
}

// newModel builds the model for a device from its template kind.
func newModel(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand, start time.Time) (model, error) {
	rate := defaultFaultsPerDay[t.Kind]
	if d.FaultsPerDay != nil {
		rate = *d.FaultsPerDay
	}
	switch {
	case t.Kind == config.KindElevator:
		return newElevator(d, t, loc, r, rate, start), nil
	case t.Kind == config.KindPump:
		return newPumpUnit(d, t, rate), nil
	case t.Kind == config.KindMeter:
		return newMeter(d, t, loc, r), nil
	case t.Kind == config.KindLighting && t.Protocol == config.ProtoModbus:
		return newPanel(d, t, loc, r), nil
	case t.Kind == config.KindLighting:
		return newPlug(d, t, loc, r), nil
	}
	return nil, fmt.Errorf("cannot simulate template %q: no model for kind %q", t.ID, t.Kind)
}
