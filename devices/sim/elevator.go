package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Elevator phases. A trip is: doors open at the current floor, passengers
// board, doors close, the car runs floor by floor to the destination, doors
// open, passengers leave, doors close, idle until the next call.
type elevatorPhase int

const (
	phIdle elevatorPhase = iota
	phDoorOpening
	phDoorOpen
	phDoorClosing
	phRunning
	phFault   // stopped at a floor by a fault, doors closed
	phTrapped // stopped between floors with passengers inside
)

// Elevator metric codes (template states).
const (
	elevIdle, elevRunning, elevStopped = 0, 1, 2
	dirNone, dirUp, dirDown            = 0, 1, 2
	doorClosed, doorOpening, doorOpen  = 0, 1, 2
	doorClosing                        = 3
)

// Vendor fault codes the simulator raises now and then.
var elevatorFaultCodes = []float64{12, 21, 35, 48} // door lock, overspeed, leveling, door obstruction

// elevatorTraffic is the mean idle time in seconds between trips by local hour.
var elevatorTraffic = [24]float64{
	900, 1200, 1500, 1500, 1200, 900, 240, 45, 40, 90, 150, 120,
	70, 110, 160, 150, 110, 60, 45, 60, 100, 180, 360, 600,
}

type elevator struct {
	r        *rand.Rand
	loc      *time.Location
	rated    float64 // traction motor kW
	lowest   int
	highest  int
	phase    elevatorPhase
	left     float64 // seconds left in the phase
	floor    int
	target   int
	dir      int
	load     float64 // % of rated load
	nextLoad float64 // load after the doors close
	fault    float64
	trips    *counter
	energy   *counter
	used     float64 // kWh, never reset
	power    float64
	rate     float64 // random faults per day
	nextF    time.Time
	trapFor  float64 // seconds a trapped passenger waits for rescue
}

func newElevator(d *DeviceConfig, t *config.Template, loc *time.Location, r *rand.Rand, rate float64, start time.Time) *elevator {
	e := &elevator{
		r: r, loc: loc, rated: d.RatedKW, lowest: -1, highest: 18,
		trips: newCounter(t, "trips"), energy: newCounter(t, "energy_kwh"),
		rate: rate, trapFor: 25 * 60,
	}
	if e.rated == 0 {
		e.rated = 11
	}
	if len(d.Floors) == 2 {
		e.lowest, e.highest = d.Floors[0], d.Floors[1]
	}
	e.floor = 1
	if e.floor > e.highest || e.floor < e.lowest {
		e.floor = e.lowest
	}
	e.phase, e.left = phIdle, 5+r.Float64()*30
	e.nextF = nextRandom(r, start, rate)
	e.power = e.phasePower()
	return e
}

func (e *elevator) step(t time.Time, dt float64) {
	for dt > 0 {
		d := math.Min(dt, e.left)
		e.power = e.phasePower()
		kwh := e.power * d / 3600
		e.energy.add(kwh)
		e.used += kwh
		e.left -= d
		dt -= d
		t = t.Add(time.Duration(d * float64(time.Second)))
		if e.left <= 1e-9 {
			e.next(t)
		}
	}
	e.power = e.phasePower()
}

// next moves to the phase after the current one ended at t.
func (e *elevator) next(t time.Time) {
	switch e.phase {
	case phIdle:
		if !t.Before(e.nextF) {
			e.nextF = nextRandom(e.r, t, e.rate)
			e.phase, e.fault = phFault, elevatorFaultCodes[e.r.IntN(len(elevatorFaultCodes))]
			e.left = 600 + e.r.ExpFloat64()*1800
			return
		}
		e.nextLoad = 8 + e.r.Float64()*72
		if e.floor != 1 { // most passengers board at the lobby or go down to it
			e.nextLoad = 5 + e.r.Float64()*40
		}
		e.target = e.pickFloor()
		e.phase, e.left = phDoorOpening, 2.5
	case phDoorOpening:
		e.phase, e.left = phDoorOpen, 4+e.r.Float64()*6
	case phDoorOpen:
		e.phase, e.left = phDoorClosing, 3
	case phDoorClosing:
		if e.target != e.floor {
			e.load, e.nextLoad = e.nextLoad, 0
			e.dir = dirUp
			if e.target < e.floor {
				e.dir = dirDown
			}
			e.trips.add(1)
			e.phase, e.left = phRunning, 4.5 // accelerate, first floor
			return
		}
		e.load = 0
		e.phase, e.left = phIdle, e.r.ExpFloat64()*dayProfile(&elevatorTraffic, t.In(e.loc))
	case phRunning:
		if e.dir == dirUp {
			e.floor++
		} else {
			e.floor--
		}
		if e.floor == e.target {
			e.dir = dirNone
			e.phase, e.left = phDoorOpening, 3 // decelerate, level, open
			return
		}
		e.left = 1.8
	case phFault, phTrapped:
		e.fault, e.dir, e.load = 0, dirNone, 0
		e.phase, e.left = phIdle, 60
	}
}

func (e *elevator) pickFloor() int {
	for {
		f := e.lowest + e.r.IntN(e.highest-e.lowest+1)
		if e.floor != 1 && e.r.Float64() < 0.6 {
			f = 1 // back to the lobby
		}
		if f != e.floor && f >= e.lowest && f <= e.highest {
			return f
		}
	}
}

// phasePower is the draw in kW: controller and car lights always, the door
// operator while doors move, the traction motor while running. The motor
// works against the imbalance between the car load and the counterweight
// (balanced at 45 % load); running with the imbalance it regenerates and
// draws only its losses.
func (e *elevator) phasePower() float64 {
	const standby = 0.35
	switch e.phase {
	case phDoorOpening, phDoorClosing:
		return standby + 0.25
	case phRunning:
		drive := (e.load - 45) / 55
		if e.dir == dirDown {
			drive = -drive
		}
		return standby + e.rated*(0.2+0.8*math.Max(drive, 0)+0.1*math.Max(-drive, 0))
	case phFault, phTrapped:
		return standby * 0.8
	}
	return standby
}

func (e *elevator) values(v map[string]float64) {
	running, door := elevIdle, doorClosed
	switch e.phase {
	case phRunning:
		running = elevRunning
	case phFault, phTrapped:
		running = elevStopped
	case phDoorOpening:
		door = doorOpening
	case phDoorOpen:
		door = doorOpen
	case phDoorClosing:
		door = doorClosing
	}
	v["running"] = float64(running)
	v["direction"] = float64(e.dir)
	v["floor"] = float64(e.floor)
	v["door"] = float64(door)
	v["service_mode"] = 0
	v["fault_code"] = e.fault
	v["load_pct"] = math.Round(e.load)
	v["power_kw"] = e.power
	v["trips"] = e.trips.v
	v["energy_kwh"] = e.energy.v
	v["trapped"] = b2f(e.phase == phTrapped)
	v["safety_ok"] = b2f(e.phase != phTrapped && e.phase != phFault)
}

func (e *elevator) powerKW() float64     { return e.power }
func (e *elevator) consumedKWh() float64 { return e.used }
func (e *elevator) counters() map[string]*counter {
	return map[string]*counter{"trips": e.trips, "energy_kwh": e.energy}
}

func (e *elevator) event(name string, t time.Time) error {
	switch name {
	case "trapped":
		// The car stops where it is (between floors when running) with
		// passengers inside until rescued.
		if e.load < 10 {
			e.load = 10 + e.r.Float64()*40
		}
		e.phase, e.left, e.fault = phTrapped, e.trapFor, 0
	case "fault":
		e.phase, e.fault, e.dir = phFault, elevatorFaultCodes[e.r.IntN(len(elevatorFaultCodes))], dirNone
		e.left = 600 + e.r.ExpFloat64()*1800
	case "release", "clear":
		if e.phase == phTrapped || e.phase == phFault {
			e.fault, e.dir, e.load = 0, dirNone, 0
			e.phase, e.left = phIdle, 60
		}
	default:
		return unknownEvent(config.KindElevator, name)
	}
	e.power = e.phasePower()
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
