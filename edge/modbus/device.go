package modbus

import (
	"reflect"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Defaults for a zero Device field.
const (
	DefaultPollInterval = config.DefaultPollInterval // 10s
	DefaultTimeout      = time.Second
)

// Limits of the device settings.
const (
	MinPollInterval = 10 * time.Millisecond
	MinTimeout      = 10 * time.Millisecond
	MaxTimeout      = time.Minute
	MaxRetries      = 10
)

// Device is one Modbus device to poll.
type Device struct {
	ID       string
	Template *config.Template // a modbus template, validated (config.LoadTemplates)
	// Address is where the device is reached, see ParseAddress:
	// "tcp://host:port", "rtuovertcp://host:port" or
	// "rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1".
	Address string
	// UnitID is the Modbus unit (slave) id: 1–247 on a serial bus; over
	// Modbus TCP also 0 or 255, which devices without a gateway answer.
	UnitID byte
	// PollInterval between the starts of two polls; 0: DefaultPollInterval.
	PollInterval time.Duration
	// Timeout of one request (connect included); 0: DefaultTimeout.
	Timeout time.Duration
	// Retries of a request that got no answer (timeout, connection or frame
	// error, a gateway's exception 10 or 11), within one poll; 0: none.
	// Other exception answers are not retried.
	Retries int
	// SingleConnection marks a Modbus TCP device or gateway that serves
	// one connection at a time: every device at its address then shares one
	// connection and their requests take turns. Without it each Modbus TCP
	// device gets its own connection (a gateway with several unit ids is
	// polled in parallel). One device marked so is enough for the address.
	// RTU buses (serial port, rtuovertcp address) are always shared.
	SingleConnection bool
}

// withDefaults returns d with zero settings replaced by their defaults.
func (d Device) withDefaults() Device {
	if d.PollInterval == 0 {
		d.PollInterval = DefaultPollInterval
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	return d
}

// Validate records every problem of the device under path
// ("devices[3].address: ...").
func (d Device) Validate(p *config.Problems, path string) {
	if err := protocol.CheckID(d.ID); err != nil {
		p.Add(config.Join(path, "id"), err)
	}
	switch {
	case d.Template == nil:
		p.Addf(config.Join(path, "template"), "required")
	case d.Template.Protocol != config.ProtoModbus:
		p.Addf(config.Join(path, "template"), "template %q is a %s template, not modbus", d.Template.ID, d.Template.Protocol)
	default:
		if _, err := Plan(d.Template, 0); err != nil {
			p.Add(config.Join(path, "template"), err)
		}
	}
	a, err := ParseAddress(d.Address)
	if err != nil {
		p.Add(config.Join(path, "address"), err)
	}
	if a.Transport != TransportTCP && (d.UnitID < 1 || d.UnitID > 247) && err == nil {
		p.Addf(config.Join(path, "unit_id"), "must be 1–247 on an RTU bus, got %d", d.UnitID)
	}
	if d.PollInterval != 0 && d.PollInterval < MinPollInterval {
		p.Addf(config.Join(path, "poll_interval"), "must be at least %s, got %s", MinPollInterval, d.PollInterval)
	}
	if d.Timeout != 0 && (d.Timeout < MinTimeout || d.Timeout > MaxTimeout) {
		p.Addf(config.Join(path, "timeout"), "must be between %s and %s, got %s", MinTimeout, MaxTimeout, d.Timeout)
	}
	if d.Retries < 0 || d.Retries > MaxRetries {
		p.Addf(config.Join(path, "retries"), "must be 0–%d, got %d", MaxRetries, d.Retries)
	}
	if d.SingleConnection && err == nil && a.Transport != TransportTCP {
		p.Addf(config.Join(path, "single_connection"), "applies to Modbus TCP only (an %s bus is always shared)", a.Transport)
	}
}

// validateDevices checks every device and the set: unique ids, one unit id
// per bus, one set of line settings per serial port.
func validateDevices(devs []Device) error {
	var p config.Problems
	ids := map[string]bool{}
	type unitKey struct {
		bus  string
		unit byte
	}
	units := map[unitKey]string{}
	ports := map[string]Device{}
	for i, d := range devs {
		path := config.Join("devices", i)
		d.Validate(&p, path)
		if ids[d.ID] {
			p.Addf(config.Join(path, "id"), "duplicate device id %q", d.ID)
		}
		ids[d.ID] = true
		a, err := ParseAddress(d.Address)
		if err != nil {
			continue
		}
		k := unitKey{a.bus(), d.UnitID}
		if other, dup := units[k]; dup {
			p.Addf(config.Join(path, "unit_id"), "unit %d at %q is already device %q", d.UnitID, d.Address, other)
		}
		units[k] = d.ID
		if a.Transport != TransportRTU {
			continue
		}
		if first, ok := ports[a.Port]; ok {
			fa, _ := ParseAddress(first.Address)
			if fa.lineSettings() != a.lineSettings() {
				p.Addf(config.Join(path, "address"), "serial port %q runs at %s for device %q, not %s", a.Port, fa.lineSettings(), first.ID, a.lineSettings())
			}
		} else {
			ports[a.Port] = d
		}
	}
	return p.Err()
}

// linkKeys assigns each device (by id) the key of the link it uses: the bus
// for RTU and for Modbus TCP addresses with a single-connection device, the
// device itself otherwise. devs must be valid.
func linkKeys(devs []Device) map[string]string {
	single := map[string]bool{}
	for _, d := range devs {
		if a, _ := ParseAddress(d.Address); d.SingleConnection {
			single[a.bus()] = true
		}
	}
	keys := make(map[string]string, len(devs))
	for _, d := range devs {
		a, _ := ParseAddress(d.Address)
		if a.Transport == TransportTCP && !single[a.bus()] {
			keys[d.ID] = a.bus() + "#" + d.ID
		} else {
			keys[d.ID] = a.bus()
		}
	}
	return keys
}

// sameDevice reports whether two device settings poll alike, templates
// compared by content.
func sameDevice(a, b Device) bool {
	ta, tb := a.Template, b.Template
	a.Template, b.Template = nil, nil
	return a == b && (ta == tb || reflect.DeepEqual(ta, tb))
}
