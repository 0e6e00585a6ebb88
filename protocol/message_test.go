package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeStatusRejects(t *testing.T) {
	cases := []struct {
		name, json string
		want       error
		cause      string
	}{
		{"not JSON", `state=online`, ErrJSON, "json"},
		{"empty", ``, ErrJSON, "json"},
		{"array", `[1]`, ErrJSON, "json"},
		{"trailing garbage", `{"v":1,"gateway":"gw-1","state":"online"} x`, ErrJSON, "json"},
		{"wrong type", `{"v":"1","gateway":"gw-1","state":"online"}`, ErrJSON, "json"},
		{"missing version", `{"gateway":"gw-1","state":"online"}`, ErrVersion, "version"},
		{"future version", `{"v":3,"gateway":"gw-1","state":"online"}`, ErrVersion, "version"},
		{"missing gateway", `{"v":1,"state":"online"}`, ErrID, "id"},
		{"bad gateway", `{"v":1,"gateway":"gw/1","state":"online"}`, ErrID, "id"},
		{"unknown state", `{"v":1,"gateway":"gw-1","state":"sleeping"}`, ErrJSON, "json"},
		{"missing state", `{"v":1,"gateway":"gw-1"}`, ErrJSON, "json"},
		{"negative ts", `{"v":1,"gateway":"gw-1","state":"online","ts":-1}`, ErrTimestamp, "timestamp"},
		{"ts in seconds", `{"v":1,"gateway":"gw-1","state":"online","ts":1773475200}`, ErrTimestamp, "timestamp"},
		{"too large", `{"v":1,"gateway":"gw-1","state":"online","agent":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := DecodeStatus([]byte(c.json))
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeStatus error = %v, want %v", err, c.want)
			}
			if got := Cause(err); got != c.cause {
				t.Errorf("Cause = %q, want %q", got, c.cause)
			}
			if s != (Status{}) {
				t.Errorf("DecodeStatus returned %+v with its error", s)
			}
		})
	}
}

func TestDecodeEventRejects(t *testing.T) {
	cases := []struct {
		name, json string
		want       error
		cause      string
	}{
		{"not JSON", `{"v":1,`, ErrJSON, "json"},
		{"wrong seq type", `{"v":1,"gateway":"gw-1","seq":"x","kind":"device_offline","ts":1773475200000}`, ErrJSON, "json"},
		{"negative seq", `{"v":1,"gateway":"gw-1","seq":-1,"kind":"device_offline","ts":1773475200000}`, ErrJSON, "json"},
		{"attr not a number", `{"v":1,"gateway":"gw-1","seq":1,"kind":"queue_overflow","ts":1773475200000,"attrs":{"dropped":"many"}}`, ErrJSON, "json"},
		{"future version", `{"v":3,"gateway":"gw-1","seq":1,"kind":"device_offline","ts":1773475200000}`, ErrVersion, "version"},
		{"bad gateway", `{"v":1,"gateway":"","seq":1,"kind":"device_offline","ts":1773475200000}`, ErrID, "id"},
		{"bad device", `{"v":1,"gateway":"gw-1","seq":1,"kind":"device_offline","device":"pump 1","ts":1773475200000}`, ErrID, "id"},
		{"missing kind", `{"v":1,"gateway":"gw-1","seq":1,"ts":1773475200000}`, ErrMetric, "metric"},
		{"bad kind", `{"v":1,"gateway":"gw-1","seq":1,"kind":"Device-Offline","ts":1773475200000}`, ErrMetric, "metric"},
		{"missing ts", `{"v":1,"gateway":"gw-1","seq":1,"kind":"device_offline"}`, ErrTimestamp, "timestamp"},
		{"ts before MinTimestamp", `{"v":1,"gateway":"gw-1","seq":1,"kind":"device_offline","ts":946684799999}`, ErrTimestamp, "timestamp"},
		{"too large", `{"v":1,"gateway":"gw-1","seq":1,"kind":"device_offline","ts":1773475200000,"message":"` +
			strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeEvent([]byte(c.json))
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeEvent error = %v, want %v", err, c.want)
			}
			if got := Cause(err); got != c.cause {
				t.Errorf("Cause = %q, want %q", got, c.cause)
			}
			if !reflect.DeepEqual(e, Event{}) {
				t.Errorf("DecodeEvent returned %+v with its error", e)
			}
		})
	}
}

func TestDecodeEventAccepts(t *testing.T) {
	// Unknown kinds and unknown fields pass, so gateways can grow without a
	// version change; a gateway-wide event has no device.
	e, err := DecodeEvent([]byte(`{"v":1,"gateway":"gw-1","seq":9,"kind":"door_forced","ts":1773475200000,"new_field":true}`))
	if err != nil {
		t.Fatalf("DecodeEvent: %v", err)
	}
	want := Event{V: 1, Gateway: "gw-1", Seq: 9, Kind: "door_forced", TS: 1773475200000}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("DecodeEvent = %+v, want %+v", e, want)
	}
}

func TestEncodeSetsVersion(t *testing.T) {
	s, err := DecodeStatus(EncodeStatus(Status{V: 7, Gateway: "gw-1", State: StateOffline}))
	if err != nil || s.V != MessageVersion {
		t.Fatalf("EncodeStatus then DecodeStatus = %+v, %v", s, err)
	}
	e, err := DecodeEvent(EncodeEvent(Event{Gateway: "gw-1", Kind: EventGatewayStart, TS: MinTimestamp}))
	if err != nil || e.V != MessageVersion {
		t.Fatalf("EncodeEvent then DecodeEvent = %+v, %v", e, err)
	}
}
