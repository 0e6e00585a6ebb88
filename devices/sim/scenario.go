package sim

import (
	"fmt"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Scenario is a timed list of faults and events, played against a running
// building. Times are virtual offsets from the moment Play is called.
type Scenario struct {
	Steps []ScenarioStep `yaml:"steps"`
}

// ScenarioStep does one thing to one device at a virtual offset: set a
// fault (for a while, or until cleared), clear the fault, or trigger an event.
type ScenarioStep struct {
	At     config.Duration `yaml:"at"`
	Device string          `yaml:"device"`
	Fault  *Fault          `yaml:"fault"`
	For    config.Duration `yaml:"for"` // fault only; 0: until a clear step
	Clear  bool            `yaml:"clear"`
	Event  string          `yaml:"event"` // see Building.Event
}

// Validate checks every step.
func (s *Scenario) Validate(p *config.Problems) {
	if len(s.Steps) == 0 {
		p.Addf("steps", "at least one step is required")
	}
	for i := range s.Steps {
		st := &s.Steps[i]
		sp := config.Join("steps", i)
		if st.At.Duration < 0 {
			p.Addf(config.Join(sp, "at"), "must be >= 0, got %s", st.At)
		}
		if st.Device == "" {
			p.Addf(config.Join(sp, "device"), "required")
		}
		n := 0
		if st.Fault != nil {
			n++
			st.Fault.validate(p, config.Join(sp, "fault"))
		}
		if st.Clear {
			n++
		}
		if st.Event != "" {
			n++
		}
		if n != 1 {
			p.Addf(sp, "needs exactly one of fault, clear or event")
		}
		if st.For.Duration != 0 && st.Fault == nil {
			p.Addf(config.Join(sp, "for"), "only a fault lasts for a while")
		}
		if st.For.Duration < 0 {
			p.Addf(config.Join(sp, "for"), "must be >= 0, got %s", st.For)
		}
	}
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	var s Scenario
	if err := config.LoadFile(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Play schedules a scenario's steps from the building's current virtual
// time. Every device must exist; a step that fails when it runs (an event
// the device does not know) is logged.
func (b *Building) Play(s *Scenario) error {
	var p config.Problems
	s.Validate(&p)
	for i, st := range s.Steps {
		d := b.byID[st.Device]
		sp := config.Join("steps", i)
		if d == nil {
			p.Addf(config.Join(sp, "device"), "unknown device %q", st.Device)
			continue
		}
		if st.Fault != nil && d.modbus == nil && st.Fault.modbusOnly() {
			p.Addf(config.Join(sp, "fault"), "an MQTT device can only be unreachable or send garbage")
		}
		if st.Event != "" && st.Event != "replace_meter" && !contains(kindEvents[d.tmpl.Kind], st.Event) {
			p.Addf(config.Join(sp, "event"), "a %s knows %q, not %q", d.tmpl.Kind, kindEvents[d.tmpl.Kind], st.Event)
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("cannot play scenario: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.simTime
	for i, st := range s.Steps {
		d := b.byID[st.Device]
		why := fmt.Sprintf("scenario step %d (%s at +%s)", i, st.Device, st.At)
		b.schedule(start.Add(st.At.Duration), why, func() (func(), error) {
			switch {
			case st.Fault != nil:
				apply := b.setFaultLocked(d, *st.Fault)
				if st.For.Duration > 0 {
					b.schedule(b.simTime.Add(st.For.Duration), why+": end of fault", func() (func(), error) {
						return b.logged(b.setFaultLocked(d, Fault{}), why), nil
					})
				}
				return b.logged(apply, why), nil
			case st.Clear:
				return b.logged(b.setFaultLocked(d, Fault{}), why), nil
			}
			return nil, b.eventLocked(d, st.Event)
		})
	}
	b.log.Info("scenario scheduled", "steps", len(s.Steps), "from", start.Format(time.RFC3339))
	return nil
}

// logged turns a server reconciliation into a deferred action that logs
// its failure.
func (b *Building) logged(apply func() error, why string) func() {
	return func() {
		if err := apply(); err != nil {
			b.log.Error("scheduled fault could not be applied", "action", why, "error", err)
		}
	}
}
