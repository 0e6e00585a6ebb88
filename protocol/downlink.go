package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// MaxAckEntries bounds the committed ranges plus rejected entries of one
// Ack, so that an ack always fits MaxMessageBytes. A sender with more splits
// them over several acks.
const MaxAckEntries = 200

// Ack is a commit acknowledgement, cloud → gateway on "…/down/ack": the
// batches of one epoch whose readings the cloud has committed to storage
// (ranges of seqs, inclusive) and those it refuses for good. A gateway keeps
// a batch until an ack of its epoch covers it.
type Ack struct {
	V         int        `json:"v"`
	Epoch     uint64     `json:"epoch"`
	Committed []SeqRange `json:"committed,omitempty"`
	Rejected  []Rejected `json:"rejected,omitempty"`
	TS        int64      `json:"ts"` // Unix ms at which the ack was sent
}

// SeqRange is an inclusive range of seqs, [first, last], on the wire a JSON
// array of two numbers.
type SeqRange [2]uint64

// UnmarshalJSON accepts exactly two numbers.
func (r *SeqRange) UnmarshalJSON(data []byte) error {
	var v []uint64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if len(v) != 2 {
		return fmt.Errorf("%w: a range is [first,last], got %d numbers", ErrRange, len(v))
	}
	r[0], r[1] = v[0], v[1]
	return nil
}

// Rejected is a batch the cloud refuses for good, and why (a cause name,
// e.g. "seq_conflict"). The gateway drops it and counts it.
type Rejected struct {
	Seq   uint64 `json:"seq"`
	Cause string `json:"cause"`
}

// Rejection causes carried in Ack.Rejected.
const (
	// RejectSeqConflict: the cloud committed another batch (another CRC)
	// under the same (gateway, epoch, seq).
	RejectSeqConflict = "seq_conflict"
)

// Covers reports whether one of the committed ranges holds seq.
func (a *Ack) Covers(seq uint64) bool {
	i := sort.Search(len(a.Committed), func(i int) bool { return a.Committed[i][1] >= seq })
	return i < len(a.Committed) && a.Committed[i][0] <= seq
}

// RangesOf turns seqs (any order, repeats allowed) into the sorted,
// merged ranges an Ack carries. It sorts seqs in place.
func RangesOf(seqs []uint64) []SeqRange {
	if len(seqs) == 0 {
		return nil
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	out := []SeqRange{{seqs[0], seqs[0]}}
	for _, s := range seqs[1:] {
		last := &out[len(out)-1]
		if s <= last[1] {
			continue
		}
		if s == last[1]+1 {
			last[1] = s
			continue
		}
		out = append(out, SeqRange{s, s})
	}
	return out
}

// EncodeAck marshals an ack with V set. It does not check it; a sender
// builds ranges with RangesOf and keeps to MaxAckEntries.
func EncodeAck(a Ack) []byte { a.V = MessageVersion; return mustJSON(a) }

// DecodeAck parses and checks an ack: version 2, epoch 1 … MaxEpoch, at
// least one entry and at most MaxAckEntries, every range first ≤ last, ranges
// in ascending order without overlap, merged (no two adjacent), rejected
// seqs ascending, unique and outside the committed ranges, each with a cause
// that follows the metric-name rule, ts not before MinTimestamp.
func DecodeAck(data []byte) (Ack, error) {
	var a Ack
	if err := decodeJSON(data, &a); err != nil {
		return Ack{}, err
	}
	if a.V != MessageVersion {
		return Ack{}, fmt.Errorf("%w: ack v=%d", ErrVersion, a.V)
	}
	if a.Epoch == 0 || a.Epoch > MaxEpoch {
		return Ack{}, fmt.Errorf("%w: ack epoch %d (want 1 … %d)", ErrEpoch, a.Epoch, uint64(MaxEpoch))
	}
	n := len(a.Committed) + len(a.Rejected)
	if n == 0 {
		return Ack{}, fmt.Errorf("%w: ack without committed or rejected entries", ErrRange)
	}
	if n > MaxAckEntries {
		return Ack{}, fmt.Errorf("%w: ack with %d entries (max %d)", ErrTooLarge, n, MaxAckEntries)
	}
	for i, r := range a.Committed {
		if r[0] > r[1] {
			return Ack{}, fmt.Errorf("%w: committed[%d] = [%d,%d] ends before it starts", ErrRange, i, r[0], r[1])
		}
		if i > 0 && (r[0] <= a.Committed[i-1][1] || r[0]-1 == a.Committed[i-1][1]) {
			return Ack{}, fmt.Errorf("%w: committed[%d] = [%d,%d] overlaps or touches [%d,%d] (ranges are ascending and merged)",
				ErrRange, i, r[0], r[1], a.Committed[i-1][0], a.Committed[i-1][1])
		}
	}
	for i, r := range a.Rejected {
		if i > 0 && r.Seq <= a.Rejected[i-1].Seq {
			return Ack{}, fmt.Errorf("%w: rejected[%d] seq %d is not above %d (ascending, unique)", ErrRange, i, r.Seq, a.Rejected[i-1].Seq)
		}
		if a.Covers(r.Seq) {
			return Ack{}, fmt.Errorf("%w: rejected[%d] seq %d is also committed", ErrRange, i, r.Seq)
		}
		if err := CheckMetric(r.Cause); err != nil {
			return Ack{}, fmt.Errorf("rejected[%d] cause: %w", i, err)
		}
	}
	if a.TS < MinTimestamp {
		return Ack{}, fmt.Errorf("%w: ack ts %d", ErrTimestamp, a.TS)
	}
	return a, nil
}

// Command asks a gateway to write a value to a device's point, cloud →
// gateway on "…/down/cmd". The gateway checks it against its own template,
// executes it at most once per ID and never after ExpiresAt, and reports
// the outcome as an event of kind EventCommand.
type Command struct {
	V         int     `json:"v"`
	ID        string  `json:"id"`         // unique; follows the id rule
	Device    string  `json:"device"`     // device id
	Point     string  `json:"point"`      // metric name of the writable point
	Value     float64 `json:"value"`      // finite
	IssuedAt  int64   `json:"issued_at"`  // Unix ms
	ExpiresAt int64   `json:"expires_at"` // Unix ms, after IssuedAt
	By        string  `json:"by"`         // staff id of who issued it
}

// EncodeCommand marshals a command with V set.
func EncodeCommand(c Command) []byte { c.V = MessageVersion; return mustJSON(c) }

// DecodeCommand parses and checks a command: version 2, every field present,
// ids and the point name valid, value finite, issued_at not before
// MinTimestamp, expires_at after issued_at.
func DecodeCommand(data []byte) (Command, error) {
	var raw struct {
		Command
		Value *float64 `json:"value"`
	}
	if err := decodeJSON(data, &raw); err != nil {
		return Command{}, err
	}
	c := raw.Command
	if c.V != MessageVersion {
		return Command{}, fmt.Errorf("%w: command v=%d", ErrVersion, c.V)
	}
	if err := CheckID(c.ID); err != nil {
		return Command{}, fmt.Errorf("command id: %w", err)
	}
	if err := CheckID(c.Device); err != nil {
		return Command{}, fmt.Errorf("command %q device: %w", c.ID, err)
	}
	if err := CheckMetric(c.Point); err != nil {
		return Command{}, fmt.Errorf("command %q point: %w", c.ID, err)
	}
	if raw.Value == nil {
		return Command{}, fmt.Errorf("%w: command %q has no value", ErrCommand, c.ID)
	}
	if math.IsNaN(*raw.Value) || math.IsInf(*raw.Value, 0) {
		return Command{}, fmt.Errorf("%w: command %q value %v", ErrValue, c.ID, *raw.Value)
	}
	c.Value = *raw.Value
	if c.IssuedAt < MinTimestamp {
		return Command{}, fmt.Errorf("%w: command %q issued_at %d", ErrTimestamp, c.ID, c.IssuedAt)
	}
	if c.ExpiresAt <= c.IssuedAt {
		return Command{}, fmt.Errorf("%w: command %q expires_at %d is not after issued_at %d", ErrTimestamp, c.ID, c.ExpiresAt, c.IssuedAt)
	}
	if err := CheckID(c.By); err != nil {
		return Command{}, fmt.Errorf("command %q by: %w", c.ID, err)
	}
	return c, nil
}
