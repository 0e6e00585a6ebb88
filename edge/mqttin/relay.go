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
	ErrNoRelay  = errors.New("no writable relay")
	ErrNoAnswer = errors.New("the device did not report its state")
	ErrReadBack = errors.New("the device reported another state")
	ErrNotSent  = errors.New("command not published")
	// ErrDeviceError: the device answered the command with an error (a
	// Shelly RPC error frame).
	ErrDeviceError = errors.New("the device refused the command")
	errNoBroker    = errors.New("broker not running")
	errNoChannel   = errors.New("not connected")
)

// DefaultRPCSource is the src of the Shelly Gen2 RPC requests the gateway
// sends when Options.RPCSource is empty. A Shelly answers on "<src>/rpc"
// (Shelly Gen2 API, "RPC channels": MQTT), so gateways sharing a site
// broker each need their own: RPCSource(gateway).
const DefaultRPCSource = "plantroom-edge"

// RPCSource is the src of gateway's Shelly RPC requests,
// "plantroom-edge-<gateway>": its answers come on "<src>/rpc", which no
// other gateway on the same broker subscribes to.
func RPCSource(gateway string) string { return DefaultRPCSource + "-" + gateway }

// rpcAnswer is a Shelly Gen2 RPC response frame, as the device publishes
// it on "<src>/rpc": {"id":N,"src":"<device>","dst":"<src>","result":{…}}
// or with "error":{"code":N,"message":"…"} instead of result.
type rpcAnswer struct {
	ID     int64  `json:"id"`
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Result *struct {
		WasOn *bool `json:"was_on"` // Switch.Set: the output before
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// relays tracks the last reported state of every writable relay field,
// the commands waiting for a state report and the Shelly RPC requests
// waiting for their answer.
type relays struct {
	mu      sync.Mutex
	last    map[string]float64
	waiters map[string][]chan float64
	rpc     map[int64]chan rpcAnswer
	rpcID   atomic.Int64
}

// awaitRPC registers request id; done forgets it.
func (r *relays) awaitRPC(id int64) (ch chan rpcAnswer, done func()) {
	ch = make(chan rpcAnswer, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rpc == nil {
		r.rpc = map[int64]chan rpcAnswer{}
	}
	r.rpc[id] = ch
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.rpc, id)
	}
}

// answer hands an RPC response frame to the request waiting for it; it
// reports false for a frame that is not an answer to a request in flight
// (not JSON, another id, a late answer).
func (r *relays) answer(payload []byte) bool {
	var a rpcAnswer
	if err := json.Unmarshal(payload, &a); err != nil || a.Result == nil && a.Error == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.rpc[a.ID]
	if !ok {
		return false
	}
	delete(r.rpc, a.ID) // one answer per request
	ch <- a
	return true
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
// embedded broker's catch-all subscription also sees. The answers to this
// gateway's Shelly requests (rpcTopic) are taken before this check; the
// rest are no device's readings.
func ownTopic(topic string) bool {
	return strings.HasPrefix(topic, "cmnd/") || strings.HasSuffix(topic, "/rpc") ||
		strings.HasPrefix(topic, "stat/") && strings.HasSuffix(topic, "/RESULT")
}

// relayCommand is the device's own command switching its relay: Tasmota
// "cmnd/<topic>/POWER" ON/OFF, Shelly Gen2 "<id>/rpc" Switch.Set with
// request id rpcID (answered on "<src>/rpc").
func (in *Input) relayCommand(t *config.Template, deviceTopic string, on bool, rpcID int64) (topic string, payload []byte, err error) {
	switch t.MQTT.Format {
	case config.FormatTasmota:
		if on {
			return "cmnd/" + deviceTopic + "/POWER", []byte("ON"), nil
		}
		return "cmnd/" + deviceTopic + "/POWER", []byte("OFF"), nil
	case config.FormatShelly:
		b, err := json.Marshal(map[string]any{
			"id": rpcID, "src": in.rpcSrc, "method": "Switch.Set",
			"params": map[string]any{"id": 0, "on": on},
		})
		return deviceTopic + "/rpc", b, err
	}
	return "", nil, fmt.Errorf("cannot command format %q: %w", t.MQTT.Format, ErrNoRelay)
}

// rpcTopic is where the Shelly devices answer this gateway's requests.
func (in *Input) rpcTopic() string { return in.rpcSrc + "/rpc" }

// Switch commands the relay of an MQTT device (a Tasmota or Shelly Gen2
// writable field, see config.MQTTField.Writable) on the plant-room broker
// and waits, until ctx ends, for the device to report the commanded state:
// a state message (Tasmota stat/<topic>/POWER, Shelly status/switch:0) or,
// for a Shelly, the answer to the Switch.Set request on "<src>/rpc" (a
// result: the output is now as commanded, was_on what it was before).
// before is the state before the command (Shelly's was_on, else the last
// state the device reported; nil: none seen yet); after is the last state
// reported after the command. The write is checked with the template's
// CheckWrite first. Errors: ErrNotSent (nothing published), ErrNoAnswer
// (no state report before ctx ended), ErrReadBack (only other states
// reported), ErrDeviceError (the Shelly answered with an error).
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
	id := in.relays.rpcID.Add(1)
	topic, payload, err := in.relayCommand(d.Template, d.Topic, value == 1, id)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot switch %q: %w", deviceID, err)
	}
	ch, before, done := in.relays.wait(deviceID, metric)
	defer done()
	var answers chan rpcAnswer // nil (never ready) but for a Shelly
	if d.Template.MQTT.Format == config.FormatShelly {
		var forget func()
		answers, forget = in.relays.awaitRPC(id)
		defer forget()
	}
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
		case a := <-answers:
			if a.Error != nil {
				return before, after, fmt.Errorf("cannot switch %q %q to %v: %w: RPC error %d %q", deviceID, metric, value, ErrDeviceError, a.Error.Code, a.Error.Message)
			}
			if a.Result.WasOn != nil {
				was := 0.0
				if *a.Result.WasOn {
					was = 1
				}
				before = &was
			}
			v := value // Switch.Set succeeded: the output is as commanded
			// It is the device's word on its state, as a report is: the
			// next command's "before" must not be the state report from
			// before this one (still on its way, or never sent).
			in.relays.observe(deviceID, metric, v)
			return before, &v, nil
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

// commandsShelly tells whether r has a Shelly with a writable relay,
// whose answers the gateway subscribes to on an external site broker (the
// edge's user must be allowed to read "<src>/rpc": docs/edge.md).
func (in *Input) commandsShelly(r *routes) bool {
	for _, d := range r.devices {
		if d.Template.MQTT != nil && d.Template.MQTT.Format == config.FormatShelly && hasRelay(d.Template) {
			return true
		}
	}
	return false
}

// hasRelay tells whether t has a writable relay field.
func hasRelay(t *config.Template) bool {
	for _, f := range t.MQTT.Fields {
		if t.Relay(f.Metric) != nil {
			return true
		}
	}
	return false
}
