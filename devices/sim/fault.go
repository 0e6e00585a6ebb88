package sim

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/simonvetter/modbus"
)

// Fault is misbehaviour injected into one device. The zero Fault is a
// healthy device; fields combine (slow and garbage, say).
type Fault struct {
	// Unreachable: a Modbus device stops listening (connection refused) and
	// drops its connections; an MQTT device publishes its offline message and
	// disconnects.
	Unreachable bool
	// Delay holds every Modbus answer back this long (real time).
	Delay time.Duration
	// Exception answers every Modbus request with this exception code
	// (1 illegal function, 2 illegal data address, 3 illegal data value,
	// 4 server device failure, 5 acknowledge, 6 server device busy,
	// 8 memory parity error, 10 gateway path unavailable, 11 gateway target
	// device failed to respond).
	Exception uint8
	// Garbage serves absurd values: NaN in float registers, all-ones in
	// integer registers; MQTT devices publish impossible numbers.
	Garbage bool
	// SingleConnection accepts one TCP connection at a time; a second
	// concurrent connection is closed at once (existing connections are
	// dropped when this fault is switched on or off).
	SingleConnection bool
	// StuckOutputs acknowledges every Modbus write and changes nothing (an
	// output relay welded, a drive switched to local control): a gateway
	// reading the point back finds the old value.
	StuckOutputs bool
}

// IsZero reports whether f is no fault at all.
func (f Fault) IsZero() bool { return f == Fault{} }

// faultWire is Fault in JSON and YAML: durations as "2s".
type faultWire struct {
	Unreachable      bool            `json:"unreachable,omitempty" yaml:"unreachable"`
	Delay            string          `json:"delay,omitempty" yaml:"delay"`
	Exception        uint8           `json:"exception,omitempty" yaml:"exception"`
	Garbage          bool            `json:"garbage,omitempty" yaml:"garbage"`
	SingleConnection bool            `json:"single_connection,omitempty" yaml:"single_connection"`
	StuckOutputs     bool            `json:"stuck_outputs,omitempty" yaml:"stuck_outputs"`
	For              config.Duration `json:"-" yaml:"-"`
}

// MarshalJSON writes the fault with the delay as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	w := faultWire{Unreachable: f.Unreachable, Exception: f.Exception, Garbage: f.Garbage, SingleConnection: f.SingleConnection, StuckOutputs: f.StuckOutputs}
	if f.Delay > 0 {
		w.Delay = f.Delay.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a fault; unknown fields are errors.
func (f *Fault) UnmarshalJSON(data []byte) error {
	var w faultWire
	if err := decodeStrictJSON(data, &w); err != nil {
		return err
	}
	return f.fromWire(w)
}

// UnmarshalYAML reads a fault from a building or scenario file.
func (f *Fault) UnmarshalYAML(unmarshal func(any) error) error {
	var w faultWire
	if err := unmarshal(&w); err != nil {
		return err
	}
	return f.fromWire(w)
}

func (f *Fault) fromWire(w faultWire) error {
	*f = Fault{Unreachable: w.Unreachable, Exception: w.Exception, Garbage: w.Garbage, SingleConnection: w.SingleConnection, StuckOutputs: w.StuckOutputs}
	if w.Delay != "" {
		d, err := time.ParseDuration(w.Delay)
		if err != nil {
			return fmt.Errorf("cannot parse delay %q: %w", w.Delay, err)
		}
		f.Delay = d
	}
	return nil
}

func (f *Fault) validate(p *config.Problems, path string) {
	if f.Delay < 0 || f.Delay > 10*time.Minute {
		p.Addf(config.Join(path, "delay"), "must be between 0 and 10m, got %s", f.Delay)
	}
	if f.Exception != 0 {
		if _, ok := exceptionErrors[f.Exception]; !ok {
			p.Addf(config.Join(path, "exception"), "unknown Modbus exception code %d (want 1–6, 8, 10 or 11)", f.Exception)
		}
	}
}

// check returns the fault's problems as one error, or nil.
func (f *Fault) check() error {
	var p config.Problems
	f.validate(&p, "fault")
	return p.Err()
}

// modbusOnly reports whether f uses a kind of fault that only a Modbus
// device can show.
func (f *Fault) modbusOnly() bool {
	return f.Delay > 0 || f.Exception != 0 || f.SingleConnection || f.StuckOutputs
}

// exceptionErrors maps exception codes to the errors the Modbus server
// turns back into those codes.
var exceptionErrors = map[uint8]error{
	1:  modbus.ErrIllegalFunction,
	2:  modbus.ErrIllegalDataAddress,
	3:  modbus.ErrIllegalDataValue,
	4:  modbus.ErrServerDeviceFailure,
	5:  modbus.ErrAcknowledge,
	6:  modbus.ErrServerDeviceBusy,
	8:  modbus.ErrMemoryParityError,
	10: modbus.ErrGWPathUnavailable,
	11: modbus.ErrGWTargetFailedToRespond,
}

// exceptionCode is the inverse of exceptionErrors; unknown errors are a
// server device failure, as the Modbus server maps them.
func exceptionCode(err error) uint8 {
	for c, e := range exceptionErrors {
		if e == err {
			return c
		}
	}
	return 4
}
