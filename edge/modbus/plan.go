package modbus

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/plantroom/plantroom/config"
)

// Limits of one Modbus read request (Modbus application protocol v1.1b3).
const (
	MaxRegisters = 125  // holding or input registers per request (functions 03, 04)
	MaxBits      = 2000 // coils or discrete inputs per request (functions 01, 02)
)

// DefaultMaxGap is the gap fill the agent uses unless configured: up to 16
// unused registers (32 bytes on the wire) are read to save a request.
const DefaultMaxGap = 16

// Request is one read of a contiguous block of one register kind, and the
// template points it carries.
type Request struct {
	Register string // config.RegCoil, RegDiscrete, RegHolding or RegInput
	Address  uint16 // first register or bit
	Count    uint16 // registers (holding, input) or bits (coil, discrete)
	// Points are indexes into the template's Points, in address order.
	Points []int
}

// bits reports whether the request reads single bits (coils or discrete
// inputs) rather than 16-bit registers.
func (r *Request) bits() bool {
	return r.Register == config.RegCoil || r.Register == config.RegDiscrete
}

// responseBytes is the payload size a correct answer carries.
func (r *Request) responseBytes() int {
	if r.bits() {
		return (int(r.Count) + 7) / 8
	}
	return 2 * int(r.Count)
}

// String describes the request for logs: "holding 0+14".
func (r Request) String() string {
	return fmt.Sprintf("%s %d+%d", r.Register, r.Address, r.Count)
}

// registerOrder is the order requests of a plan are sent in: function code
// order.
var registerOrder = map[string]int{config.RegCoil: 0, config.RegDiscrete: 1, config.RegHolding: 2, config.RegInput: 3}

// Plan merges a template's points into as few read requests as possible.
// Points of one register kind whose registers lie at most maxGap unused
// registers apart share a request, as long as the request stays within
// MaxRegisters (MaxBits for coils and discrete inputs, where the gap is
// counted in bits: maxGap×16, the same bytes on the wire). Points that
// overlap (bits of one register) share it. maxGap 0 merges only adjacent
// and overlapping points. Requests come in function-code order, then by
// address.
func Plan(t *config.Template, maxGap int) ([]Request, error) {
	if t == nil {
		return nil, fmt.Errorf("cannot plan reads: no template")
	}
	if t.Protocol != config.ProtoModbus {
		return nil, fmt.Errorf("cannot plan reads of template %q: protocol is %q, not modbus", t.ID, t.Protocol)
	}
	if maxGap < 0 || maxGap > MaxRegisters {
		return nil, fmt.Errorf("cannot plan reads of template %q: gap fill %d is not between 0 and %d", t.ID, maxGap, MaxRegisters)
	}
	// Sort keys: register kind (function code order) above the address.
	keys := make([]uint32, 0, len(t.Points))
	for i := range t.Points {
		pt := &t.Points[i]
		kind, ok := registerOrder[pt.Register]
		if !ok {
			return nil, fmt.Errorf("cannot plan reads of template %q: point %q: unknown register kind %q", t.ID, pt.Metric, pt.Register)
		}
		if pt.Registers() == 0 {
			return nil, fmt.Errorf("cannot plan reads of template %q: point %q: unknown type %q", t.ID, pt.Metric, pt.Type)
		}
		if int(pt.Address)+pt.Registers() > 65536 {
			return nil, fmt.Errorf("cannot plan reads of template %q: point %q at %d runs past address 65535", t.ID, pt.Metric, pt.Address)
		}
		keys = append(keys, uint32(kind)<<16|uint32(pt.Address))
	}
	idx := make([]int, len(t.Points))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	var reqs []Request
	var end int // one past the last register of the open request
	for _, i := range idx {
		pt := &t.Points[i]
		start, n := int(pt.Address), pt.Registers()
		limit, gap := MaxRegisters, maxGap
		if pt.Register == config.RegCoil || pt.Register == config.RegDiscrete {
			limit, gap = MaxBits, maxGap*16
		}
		if k := len(reqs) - 1; k >= 0 && reqs[k].Register == pt.Register &&
			start-end <= gap && max(end, start+n)-int(reqs[k].Address) <= limit {
			end = max(end, start+n)
			reqs[k].Count = uint16(end - int(reqs[k].Address))
			reqs[k].Points = append(reqs[k].Points, i)
			continue
		}
		reqs = append(reqs, Request{Register: pt.Register, Address: pt.Address, Count: uint16(n), Points: []int{i}})
		end = start + n
	}
	return reqs, nil
}

// split returns one request per point of r, for when a device refuses a
// merged read (illegal data address on a register inside the gap it
// bridged).
func (r *Request) split(t *config.Template) []Request {
	out := make([]Request, 0, len(r.Points))
	for _, i := range r.Points {
		pt := &t.Points[i]
		if k := len(out) - 1; k >= 0 && out[k].Address == pt.Address && int(out[k].Count) == pt.Registers() {
			out[k].Points = append(out[k].Points, i) // bits of one register stay together
			continue
		}
		out = append(out, Request{Register: r.Register, Address: pt.Address, Count: uint16(pt.Registers()), Points: []int{i}})
	}
	return out
}
