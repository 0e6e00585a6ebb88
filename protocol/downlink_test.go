package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeAckRejects(t *testing.T) {
	const ts = `,"ts":1773475206250}`
	cases := []struct {
		name, json string
		want       error
		cause      string
	}{
		{"not JSON", `ack`, ErrJSON, "json"},
		{"version 1", `{"v":1,"epoch":7,"committed":[[1,1]]` + ts, ErrVersion, "version"},
		{"missing version", `{"epoch":7,"committed":[[1,1]]` + ts, ErrVersion, "version"},
		{"epoch zero", `{"v":2,"epoch":0,"committed":[[1,1]]` + ts, ErrEpoch, "epoch"},
		{"missing epoch", `{"v":2,"committed":[[1,1]]` + ts, ErrEpoch, "epoch"},
		{"epoch above 2^63-1", `{"v":2,"epoch":9223372036854775808,"committed":[[1,1]]` + ts, ErrEpoch, "epoch"},
		{"negative epoch", `{"v":2,"epoch":-1,"committed":[[1,1]]` + ts, ErrJSON, "json"},
		{"no entries", `{"v":2,"epoch":7` + ts, ErrRange, "range"},
		{"empty lists", `{"v":2,"epoch":7,"committed":[],"rejected":[]` + ts, ErrRange, "range"},
		{"range of one number", `{"v":2,"epoch":7,"committed":[[1]]` + ts, ErrJSON, "json"},
		{"range of three numbers", `{"v":2,"epoch":7,"committed":[[1,2,3]]` + ts, ErrJSON, "json"},
		{"range as object", `{"v":2,"epoch":7,"committed":[{"first":1}]` + ts, ErrJSON, "json"},
		{"bare cumulative number", `{"v":2,"epoch":7,"committed":57` + ts, ErrJSON, "json"},
		{"range backwards", `{"v":2,"epoch":7,"committed":[[5,3]]` + ts, ErrRange, "range"},
		{"ranges out of order", `{"v":2,"epoch":7,"committed":[[10,12],[1,3]]` + ts, ErrRange, "range"},
		{"ranges overlap", `{"v":2,"epoch":7,"committed":[[1,5],[5,9]]` + ts, ErrRange, "range"},
		{"ranges not merged", `{"v":2,"epoch":7,"committed":[[1,5],[6,9]]` + ts, ErrRange, "range"},
		{"rejected twice", `{"v":2,"epoch":7,"rejected":[{"seq":3,"cause":"seq_conflict"},{"seq":3,"cause":"seq_conflict"}]` + ts, ErrRange, "range"},
		{"rejected out of order", `{"v":2,"epoch":7,"rejected":[{"seq":4,"cause":"x"},{"seq":3,"cause":"x"}]` + ts, ErrRange, "range"},
		{"rejected and committed", `{"v":2,"epoch":7,"committed":[[1,5]],"rejected":[{"seq":3,"cause":"seq_conflict"}]` + ts, ErrRange, "range"},
		{"rejected without cause", `{"v":2,"epoch":7,"rejected":[{"seq":3}]` + ts, ErrMetric, "metric"},
		{"rejected with a bad cause", `{"v":2,"epoch":7,"rejected":[{"seq":3,"cause":"Seq Conflict"}]` + ts, ErrMetric, "metric"},
		{"missing ts", `{"v":2,"epoch":7,"committed":[[1,1]]}`, ErrTimestamp, "timestamp"},
		{"ts in seconds", `{"v":2,"epoch":7,"committed":[[1,1]],"ts":1773475206}`, ErrTimestamp, "timestamp"},
		{"too many entries", `{"v":2,"epoch":7,"committed":[` + strings.Repeat("[1,1],", MaxAckEntries) + `[1,1]]` + ts, ErrTooLarge, "too_large"},
		{"too large", `{"v":2,"epoch":7,"committed":[[1,1]],"x":"` + strings.Repeat("x", MaxMessageBytes) + `"` + ts, ErrTooLarge, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := DecodeAck([]byte(c.json))
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeAck error = %v, want %v", err, c.want)
			}
			if got := Cause(err); got != c.cause {
				t.Errorf("Cause = %q, want %q", got, c.cause)
			}
			if !reflect.DeepEqual(a, Ack{}) {
				t.Errorf("DecodeAck returned %+v with its error", a)
			}
		})
	}
}

func TestAckRanges(t *testing.T) {
	got := RangesOf([]uint64{60, 3, 1, 2, 2, 57, 58, 10})
	want := []SeqRange{{1, 3}, {10, 10}, {57, 58}, {60, 60}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RangesOf = %v, want %v", got, want)
	}
	if RangesOf(nil) != nil {
		t.Fatal("RangesOf(nil) is not nil")
	}
	a := Ack{Epoch: 7, Committed: got, TS: MinTimestamp}
	for seq, in := range map[uint64]bool{0: false, 1: true, 3: true, 4: false, 9: false, 10: true, 11: false, 56: false, 57: true, 58: true, 59: false, 60: true, 61: false} {
		if a.Covers(seq) != in {
			t.Errorf("Covers(%d) = %v, want %v", seq, !in, in)
		}
	}
	// What RangesOf builds always decodes: the sender's and receiver's rules agree.
	if _, err := DecodeAck(EncodeAck(a)); err != nil {
		t.Fatalf("an ack built with RangesOf does not decode: %v", err)
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	const tail = `,"issued_at":1773475200000,"expires_at":1773475260000,"by":"pm-garden"}`
	cases := []struct {
		name, json string
		want       error
		cause      string
	}{
		{"not JSON", `switch on`, ErrJSON, "json"},
		{"version 1", `{"v":1,"id":"c1","device":"d-1","point":"on","value":1` + tail, ErrVersion, "version"},
		{"missing id", `{"v":2,"device":"d-1","point":"on","value":1` + tail, ErrID, "id"},
		{"id with slash", `{"v":2,"id":"c/1","device":"d-1","point":"on","value":1` + tail, ErrID, "id"},
		{"missing device", `{"v":2,"id":"c1","point":"on","value":1` + tail, ErrID, "id"},
		{"bad point", `{"v":2,"id":"c1","device":"d-1","point":"On","value":1` + tail, ErrMetric, "metric"},
		{"missing value", `{"v":2,"id":"c1","device":"d-1","point":"on"` + tail, ErrCommand, "command"},
		{"null value", `{"v":2,"id":"c1","device":"d-1","point":"on","value":null` + tail, ErrCommand, "command"},
		{"string value", `{"v":2,"id":"c1","device":"d-1","point":"on","value":"1"` + tail, ErrJSON, "json"},
		{"value overflowing float64", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1e999` + tail, ErrJSON, "json"},
		{"missing issued_at", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"expires_at":1773475260000,"by":"s"}`, ErrTimestamp, "timestamp"},
		{"issued_at in seconds", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"issued_at":1773475200,"expires_at":1773475260000,"by":"s"}`, ErrTimestamp, "timestamp"},
		{"expiry at issue", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"issued_at":1773475200000,"expires_at":1773475200000,"by":"s"}`, ErrTimestamp, "timestamp"},
		{"missing expiry", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"issued_at":1773475200000,"by":"s"}`, ErrTimestamp, "timestamp"},
		{"missing by", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"issued_at":1773475200000,"expires_at":1773475260000}`, ErrID, "id"},
		{"too large", `{"v":2,"id":"c1","device":"d-1","point":"on","value":1,"x":"` + strings.Repeat("x", MaxMessageBytes) + `"` + tail, ErrTooLarge, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd, err := DecodeCommand([]byte(c.json))
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeCommand error = %v, want %v", err, c.want)
			}
			if got := Cause(err); got != c.cause {
				t.Errorf("Cause = %q, want %q", got, c.cause)
			}
			if cmd != (Command{}) {
				t.Errorf("DecodeCommand returned %+v with its error", cmd)
			}
		})
	}
	// A value of zero is a value (switch off), not a missing one.
	c, err := DecodeCommand([]byte(`{"v":2,"id":"c1","device":"d-1","point":"on","value":0` + tail))
	if err != nil || c.Value != 0 {
		t.Fatalf("DecodeCommand of value 0 = %+v, %v", c, err)
	}
}

func TestDecodeCommandEvent(t *testing.T) {
	const head = `{"v":2,"gateway":"gw-1","seq":3,"kind":"command","device":"d-1","ts":1773475200000`
	for _, c := range []struct {
		name, json string
		want       error // nil: accepted
	}{
		{"applied", head + `,"command_id":"c1","state":"applied","before":0,"after":1}`, nil},
		{"applied without values", head + `,"command_id":"c1","state":"applied"}`, nil},
		{"failed with cause", head + `,"command_id":"c1","state":"failed","cause":"readback_mismatch","before":0,"after":0}`, nil},
		{"missing command id", head + `,"state":"applied"}`, ErrID},
		{"unknown state", head + `,"command_id":"c1","state":"done"}`, ErrCommand},
		{"rejected without cause", head + `,"command_id":"c1","state":"rejected"}`, ErrCommand},
		{"expired with a bad cause", head + `,"command_id":"c1","state":"expired","cause":"Too Late"}`, ErrCommand},
		{"without device", `{"v":2,"gateway":"gw-1","seq":3,"kind":"command","ts":1773475200000,"command_id":"c1","state":"applied"}`, ErrCommand},
		{"command fields on another kind", `{"v":2,"gateway":"gw-1","seq":3,"kind":"device_online","device":"d-1","ts":1773475200000,"state":"applied"}`, ErrCommand},
		{"version-1 event", `{"v":1,"gateway":"gw-1","seq":3,"kind":"device_online","device":"d-1","ts":1773475200000}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(c.json))
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("DecodeEvent error = %v, want %v", err, c.want)
			}
			if err != nil && Cause(err) == "other" {
				t.Fatalf("error %q names no cause", err)
			}
		})
	}
}
