package mqttin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/plantroom/plantroom/config"
)

// Errors of Switch.
var (
	ErrNoRelay   = errors.New("no writable relay")
	ErrNoAnswer  = errors.New("the device did not report its state")
	ErrReadBack  = errors.New("the device reported another state")
	ErrNotSent   = errors.New("command not published")
	errNoBroker  = errors.New("broker not running")
	errNoChannel = errors.New("not connected")
)

// RPCSource is the src of the Shelly Gen2 RPC requests the gateway sends;
// a Shelly answers on "<src>/rpc", which the input ignores (the state is
// read back from the device's status message).
const RPCSource = "plantroom-edge"

// relays tracks the last reported state of every writable relay field and
// the commands waiting for a state report.
type relays struct {
	mu      sync.Mutex
	last    map[string]float64
	waiters map[string][]chan float64
	rpcID   atomic.Int64
}

func relayKey(device, metric string) string { return device + "\x00" + metric }

// observe is told the value of a relay field a device reported.
func (r *relays) observe(device, metric string, v float64) {
	k := relayKey(device, metric)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]float64{}
	}
	r.last[k] = v
	for _, ch := range r.waiters[k] {
		select {
		case ch <- v:
		default: // the waiter has not taken the previous one yet; it keeps waiting for the newest
			select {
			case <-ch:
			default:
			}
			ch <- v
		}
	}
}

func (r *relays) wait(device, metric string) (ch chan float64, before *float64, done func()) {
	k := relayKey(device, metric)
	ch = make(chan float64, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiters == nil {
		r.waiters = map[string][]chan float64{}
	}
	r.waiters[k] = append(r.waiters[k], ch)
	if v, ok := r.last[k]; ok {
		before = &v
	}
	return ch, before, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		ws := r.waiters[k]
		for i, w := range ws {
			if w == ch {
				r.waiters[k] = append(ws[:i:i], ws[i+1:]...)
				break
			}
		}
		if len(r.waiters[k]) == 0 {
			delete(r.waiters, k)
		}
	}
}

// ownTopic tells the gateway's own command topics and the devices' answers
// to them (Shelly RPC answers, Tasmota stat/<topic>/RESULT), which the
// embedded broker's catch-all subscription also sees: the state is read
// from the state messages that follow.
func ownTopic(topic string) bool {
	return strings.HasPrefix(topic, "cmnd/") || strings.HasSuffix(topic, "/rpc") ||
		strings.HasPrefix(topic, "stat/") && strings.HasSuffix(topic, "/RESULT")
}

// relayCommand is the device's own command switching its relay: Tasmota
// "cmnd/<topic>/POWER" ON/OFF, Shelly Gen2 "<id>/rpc" Switch.Set.
func (in *Input) relayCommand(t *config.Template, deviceTopic string, on bool) (topic string, payload []byte, err error) {
	switch t.MQTT.Format {
	case config.FormatTasmota:
		if on {
			return "cmnd/" + deviceTopic + "/POWER", []byte("ON"), nil
		}
		return "cmnd/" + deviceTopic + "/POWER", []byte("OFF"), nil
	case config.FormatShelly:
		b, err := json.Marshal(map[string]any{
			"id": in.relays.rpcID.Add(1), "src": RPCSource, "method": "Switch.Set",
			"params": map[string]any{"id": 0, "on": on},
		})
		return deviceTopic + "/rpc", b, err
	}
	return "", nil, fmt.Errorf("cannot command format %q: %w", t.MQTT.Format, ErrNoRelay)
}

// Switch commands the relay of an MQTT device (a Tasmota or Shelly Gen2
// writable field, see config.MQTTField.Writable) on the plant-room broker
// and waits, until ctx ends, for the device to report the commanded state.
// before is the last state the device reported (nil: none seen yet);
// after is the last state reported after the command. The write is checked
// with the template's CheckWrite first. Errors: ErrNotSent (nothing
// published), ErrNoAnswer (no state report before ctx ended), ErrReadBack
// (only other states reported).
func (in *Input) Switch(ctx context.Context, deviceID, metric string, value float64) (before, after *float64, err error) {
	d := in.table.Load().devices[deviceID]
	if d == nil {
		return nil, nil, fmt.Errorf("cannot switch %q: %w: unknown MQTT device", deviceID, ErrNotSent)
	}
	if _, err := d.Template.CheckWrite(metric, value); err != nil {
		return nil, nil, fmt.Errorf("cannot switch %q: %w", deviceID, err)
	}
	if d.Template.Relay(metric) == nil {
		return nil, nil, fmt.Errorf("cannot switch %q %q: %w", deviceID, metric, ErrNoRelay)
	}
	topic, payload, err := in.relayCommand(d.Template, d.Topic, value == 1)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot switch %q: %w", deviceID, err)
	}
	ch, before, done := in.relays.wait(deviceID, metric)
	defer done()
	if err := in.tr.publish(topic, payload); err != nil {
		return before, nil, fmt.Errorf("cannot switch %q: %w on %q: %w", deviceID, ErrNotSent, topic, err)
	}
	for {
		select {
		case v := <-ch:
			after = &v
			if v == value {
				return before, after, nil
			}
		case <-ctx.Done():
			if after != nil {
				return before, after, fmt.Errorf("cannot switch %q %q to %v: %w (%v)", deviceID, metric, value, ErrReadBack, *after)
			}
			return before, nil, fmt.Errorf("cannot switch %q %q to %v: %w: %w", deviceID, metric, value, ErrNoAnswer, ctx.Err())
		case <-in.done:
			return before, after, fmt.Errorf("cannot switch %q: %w: input stopped", deviceID, ErrNoAnswer)
		}
	}
}
