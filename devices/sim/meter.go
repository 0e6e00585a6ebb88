package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/plantroom/plantroom/config"
)

// buildingBase is the unmetered common load (ventilation, corridor power,
// security) as a fraction of its configured peak, by local hour.
var buildingBase = [24]float64{
	0.55, 0.52, 0.50, 0.50, 0.52, 0.58, 0.70, 0.85, 0.95, 1.00, 1.00, 0.98,
	0.95, 0.97, 1.00, 1.00, 0.98, 0.95, 0.92, 0.90, 0.85, 0.78, 0.68, 0.60,
}

// meter is a three-phase energy meter on a building's main incomer. Its
// power is the base load plus the power of the loads it meters, and its
// import counter grows by the base energy plus exactly the energy its loads
// drew in each step.
type meter struct {
	r      *rand.Rand
	loc    *time.Location
	base   float64 // kW at peak
	loads  []model
	last   []float64 // loads' consumedKWh at the previous step
	baseKW float64
	total  float64 // kW
	split  [3]float64
	volt   [3]wander
	pf     [3]wander
	imbal  [3]wander
	fnoise wander
	vnoise [3]float64
	pfv    [3]float64
	freq   float64
	imp    *counter
	exp    *counter
	tot    *counter
	used   float64
}

func newMeter(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand) *meter {
	m := &meter{
		r: r, loc: loc, base: d.BaseLoadKW,
		imp: newCounter(t, "energy_import_kwh"), exp: newCounter(t, "energy_export_kwh"),
		tot: newCounter(t, "energy_total_kwh"), fnoise: wander{tau: 30, sigma: 0.02},
		split: [3]float64{1. / 3, 1. / 3, 1. / 3}, freq: 50,
	}
	for i := range 3 {
		m.volt[i] = wander{tau: 120, sigma: 2}
		m.pf[i] = wander{tau: 300, sigma: 0.015}
		m.imbal[i] = wander{tau: 900, sigma: 0.04}
		m.vnoise[i], m.pfv[i] = 230, 0.93
	}
	return m
}

// meterLoads connects the meter to the models it meters.
func (m *meter) meterLoads(loads []model) {
	m.loads = loads
	m.last = make([]float64, len(loads))
	for i, l := range loads {
		m.last[i] = l.consumedKWh()
	}
	m.total = m.base * 0.5
	for _, l := range loads {
		m.total += l.powerKW()
	}
}

// step must run after the loads' steps (the building steps meters last).
func (m *meter) step(t time.Time, dt float64) {
	m.baseKW = m.base * dayProfile(&buildingBase, t.In(m.loc))
	kwh := m.baseKW * dt / 3600
	m.total = m.baseKW
	for i, l := range m.loads {
		c := l.consumedKWh()
		kwh += c - m.last[i]
		m.last[i] = c
		m.total += l.powerKW()
	}
	m.imp.add(kwh)
	m.tot.add(kwh)
	m.used += kwh
	sum := 0.0
	for i := range 3 {
		m.vnoise[i] = 230 + m.volt[i].step(m.r, dt)
		m.pfv[i] = clamp(0.93+m.pf[i].step(m.r, dt), 0.7, 0.999)
		m.split[i] = 1 + m.imbal[i].step(m.r, dt)
		sum += m.split[i]
	}
	for i := range 3 {
		m.split[i] /= sum
	}
	m.freq = 50 + m.fnoise.step(m.r, dt)
}

// Per-phase metric names of the SDM630 template.
var (
	phaseVoltage = [3]string{"voltage_l1_v", "voltage_l2_v", "voltage_l3_v"}
	phasePower   = [3]string{"power_l1_w", "power_l2_w", "power_l3_w"}
	phasePF      = [3]string{"pf_l1", "pf_l2", "pf_l3"}
	phaseCurrent = [3]string{"current_l1_a", "current_l2_a", "current_l3_a"}
)

func (m *meter) values(v map[string]float64) {
	for i := range 3 {
		p := m.total * 1000 * m.split[i]
		v[phaseVoltage[i]] = m.vnoise[i]
		v[phasePower[i]] = p
		v[phasePF[i]] = m.pfv[i]
		v[phaseCurrent[i]] = p / (m.vnoise[i] * m.pfv[i])
	}
	v["power_total_w"] = m.total * 1000
	v["frequency_hz"] = m.freq
	v["energy_import_kwh"] = m.imp.v
	v["energy_export_kwh"] = m.exp.v
	v["energy_total_kwh"] = m.tot.v
}

func (m *meter) powerKW() float64     { return m.total }
func (m *meter) consumedKWh() float64 { return m.used }
func (m *meter) counters() map[string]*counter {
	return map[string]*counter{"energy_import_kwh": m.imp, "energy_export_kwh": m.exp, "energy_total_kwh": m.tot}
}

func (m *meter) event(name string, t time.Time) error {
	return unknownEvent(config.KindMeter, name)
}

// roundTo rounds x to a multiple of q.
func roundTo(x, q float64) float64 { return math.Round(x/q) * q }
