package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The golden table: every codec test (exact encoding, exact decoding, the
// fuzz seeds) draws its valid payloads from here. A batch fixture is a pair
// of files in testdata: <name>.hex, an annotated hex dump with one field per
// line, and <name>.json, the decoded value. A message fixture is the exact
// JSON a gateway sends, with its decoded value below.
// A batch fixture named batch_v1_* is in the version-1 layout (epoch 0).
var goldenBatches = []string{"batch_basic", "batch_multi", "batch_v1_basic"}

var goldenMessages = []struct {
	file  string
	value any // Status, Event, Ack or Command
}{
	{"status_online.json", Status{V: 2, Gateway: "gw-garden-1", State: StateOnline, TS: 1773475200000, Agent: "0.1.0"}},
	{"status_last_will.json", Status{V: 2, Gateway: "gw-garden-1", State: StateOffline, Reason: "last_will"}},
	{"event_device_offline.json", Event{V: 2, Gateway: "gw-tower-1", Seq: 17, Kind: EventDeviceOffline, Device: "tower-pump-2",
		TS: 1773475230000, Message: "2号加压泵无响应: i/o timeout after 3 polls"}},
	{"event_queue_overflow.json", Event{V: 2, Gateway: "gw-garden-1", Seq: 5, Kind: EventQueueOverflow, TS: 1773478800000,
		Message: "queue full: dropped the oldest readings", Attrs: map[string]float64{"dropped": 1200, "queue_bytes": 67108864}}},
	{"event_command_applied.json", Event{V: 2, Gateway: "gw-garden-1", Seq: 42, Kind: EventCommand, Device: "garden-light-garage",
		TS: 1773475201350, Message: "地库照明回路1 已开启", CommandID: "cmd-20260314-0001", State: CommandApplied,
		Before: f64(0), After: f64(1)}},
	{"event_command_expired.json", Event{V: 2, Gateway: "gw-tower-1", Seq: 18, Kind: EventCommand, Device: "tower-pump-1",
		TS: 1773475261000, CommandID: "3f2a9c1e-7b4d-4e8a-9c51-0d2f6b8e1a47", State: CommandExpired, Cause: "expired", Before: f64(3.5)}},
	{"ack_ranges.json", Ack{V: 2, Epoch: 4011536289077452891, Committed: []SeqRange{{1, 57}, {60, 60}},
		Rejected: []Rejected{{Seq: 58, Cause: RejectSeqConflict}}, TS: 1773475206250}},
	{"ack_single.json", Ack{V: 2, Epoch: 7, Committed: []SeqRange{{300, 300}}, TS: 1773475260900}},
	{"cmd_switch.json", Command{V: 2, ID: "cmd-20260314-0001", Device: "garden-light-garage", Point: "circuit_1_on", Value: 1,
		IssuedAt: 1773475200000, ExpiresAt: 1773475260000, By: "pm-garden"}},
	{"cmd_setpoint.json", Command{V: 2, ID: "3f2a9c1e-7b4d-4e8a-9c51-0d2f6b8e1a47", Device: "tower-pump-1", Point: "pressure_setpoint_bar",
		Value: 3.25, IssuedAt: 1773475200000, ExpiresAt: 1773475260000, By: "tech-tower-1"}},
}

func f64(v float64) *float64 { return &v }

// goldenBatch is one batch fixture: its exact bytes and decoded value.
type goldenBatch struct {
	name  string
	data  []byte
	batch Batch
}

// encode appends the fixture's batch in the fixture's version.
func (g goldenBatch) encode(dst []byte) ([]byte, error) {
	if g.batch.Epoch == 0 {
		return AppendBatchV1(dst, &g.batch)
	}
	return AppendBatch(dst, &g.batch)
}

func loadGoldenBatches(tb testing.TB) []goldenBatch {
	tb.Helper()
	var out []goldenBatch
	for _, name := range goldenBatches {
		data, err := readHexDump(filepath.Join("testdata", name+".hex"))
		if err != nil {
			tb.Fatal(err)
		}
		b, err := readBatchJSON(filepath.Join("testdata", name+".json"))
		if err != nil {
			tb.Fatal(err)
		}
		if strings.HasPrefix(name, "batch_v1_") != (b.Epoch == 0) {
			tb.Fatalf("%s: a version-1 fixture has no epoch, a version-2 fixture has one (epoch %d)", name, b.Epoch)
		}
		b.CRC = binary.LittleEndian.Uint32(data[len(data)-4:])
		out = append(out, goldenBatch{name, data, b})
	}
	return out
}

// readHexDump parses an annotated hex dump: on each line, "#" starts a
// comment and the rest is whitespace-separated two-digit hex bytes.
func readHexDump(path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i, line := range strings.Split(string(text), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, tok := range strings.Fields(line) {
			b, err := hex.DecodeString(tok)
			if err != nil || len(b) != 1 {
				return nil, fmt.Errorf("%s:%d: %q is not one hex byte", path, i+1, tok)
			}
			out = append(out, b[0])
		}
	}
	return out, nil
}

// batchJSON is the fixture form of a Batch.
type batchJSON struct {
	Gateway  string `json:"gateway"`
	Epoch    uint64 `json:"epoch"`
	Seq      uint64 `json:"seq"`
	SentAt   int64  `json:"sent_at"`
	Readings []struct {
		Device  string  `json:"device"`
		Metric  string  `json:"metric"`
		TS      int64   `json:"ts"`
		Value   float64 `json:"value"`
		Quality Quality `json:"quality"`
	} `json:"readings"`
}

func readBatchJSON(path string) (Batch, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return Batch{}, err
	}
	var j batchJSON
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Batch{}, fmt.Errorf("%s: %w", path, err)
	}
	b := Batch{Gateway: j.Gateway, Epoch: j.Epoch, Seq: j.Seq, SentAt: j.SentAt}
	for _, r := range j.Readings {
		b.Readings = append(b.Readings, Reading{r.Device, r.Metric, r.TS, r.Value, r.Quality})
	}
	return b, nil
}

func readMessageFixture(tb testing.TB, file string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(data, []byte("\n"))
}

// sameBatch reports how a and b differ, comparing values by their bits
// (so -0 differs from 0), or "" when they are equal.
func sameBatch(a, b *Batch) string {
	if a.Gateway != b.Gateway || a.Epoch != b.Epoch || a.Seq != b.Seq || a.SentAt != b.SentAt {
		return fmt.Sprintf("header %q/%d/%d/%d, want %q/%d/%d/%d", a.Gateway, a.Epoch, a.Seq, a.SentAt, b.Gateway, b.Epoch, b.Seq, b.SentAt)
	}
	if len(a.Readings) != len(b.Readings) {
		return fmt.Sprintf("%d readings, want %d", len(a.Readings), len(b.Readings))
	}
	for i := range a.Readings {
		x, y := a.Readings[i], b.Readings[i]
		if x.Device != y.Device || x.Metric != y.Metric || x.TS != y.TS || x.Quality != y.Quality ||
			math.Float64bits(x.Value) != math.Float64bits(y.Value) {
			return fmt.Sprintf("reading %d is %+v, want %+v", i, x, y)
		}
	}
	return ""
}

func TestGoldenBatchEncode(t *testing.T) {
	for _, g := range loadGoldenBatches(t) {
		t.Run(g.name, func(t *testing.T) {
			got, err := g.encode(nil)
			if err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
			if !bytes.Equal(got, g.data) {
				t.Fatalf("AppendBatch =\n%x\nwant\n%x", got, g.data)
			}
			// Appending after existing bytes checksums only the new payload.
			prefix := []byte("prefix")
			got, err = g.encode(prefix)
			if err != nil {
				t.Fatalf("AppendBatch after a prefix: %v", err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], g.data) {
				t.Fatalf("AppendBatch after a prefix =\n%x\nwant prefix then\n%x", got, g.data)
			}
		})
	}
}

func TestGoldenBatchDecode(t *testing.T) {
	for _, g := range loadGoldenBatches(t) {
		t.Run(g.name, func(t *testing.T) {
			var b Batch
			if err := DecodeBatch(g.data, &b); err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			if diff := sameBatch(&b, &g.batch); diff != "" {
				t.Fatal(diff)
			}
			if b.CRC != g.batch.CRC {
				t.Fatalf("CRC = %#08x, want the payload's last four bytes %#08x", b.CRC, g.batch.CRC)
			}
		})
	}
}

// TestGoldenBatchSpecWriter checks the test's own spec writer (used to build
// invalid payloads) against the fixtures, so the rejection tests start from
// payloads that are valid except for the one fault each introduces.
func TestGoldenBatchSpecWriter(t *testing.T) {
	for _, g := range loadGoldenBatches(t) {
		if got := rawFromBatch(&g.batch).bytes(); !bytes.Equal(got, g.data) {
			t.Errorf("%s: spec writer gives\n%x\nwant\n%x", g.name, got, g.data)
		}
	}
}

func TestGoldenMessages(t *testing.T) {
	for _, g := range goldenMessages {
		t.Run(g.file, func(t *testing.T) {
			data := readMessageFixture(t, g.file)
			var got any
			var enc []byte
			var err error
			switch v := g.value.(type) {
			case Status:
				got, err = DecodeStatus(data)
				v.V = 0 // EncodeStatus sets it
				enc = EncodeStatus(v)
			case Event:
				got, err = DecodeEvent(data)
				v.V = 0
				enc = EncodeEvent(v)
			case Ack:
				got, err = DecodeAck(data)
				v.V = 0
				enc = EncodeAck(v)
			case Command:
				got, err = DecodeCommand(data)
				v.V = 0
				enc = EncodeCommand(v)
			default:
				t.Fatalf("BUG: fixture value of type %T", g.value)
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, g.value) {
				t.Fatalf("decoded %+v, want %+v", got, g.value)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("encoded %s, want %s", enc, data)
			}
		})
	}
}
