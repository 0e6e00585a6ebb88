package command

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

func demoTemplates(t *testing.T) config.Templates {
	t.Helper()
	ts, err := config.LoadTemplates("../../configs/templates")
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestCheck(t *testing.T) {
	ts := demoTemplates(t)
	light := Device{ID: "g-light-1", Template: ts["lighting-panel"]}
	ok := Request{Device: "g-light-1", Point: "circuit2_on", Value: 1, Reason: "garage lit at noon", By: "pm-garden"}
	if d, err := Check(ok, light); err != nil || d != 60*time.Second {
		t.Fatalf("Check(ok) = %v, %v; want 60s, nil", d, err)
	}
	with := func(f func(*Request)) Request { r := ok; f(&r); return r }
	cases := []struct {
		name string
		r    Request
		d    Device
		want error
		msg  string
	}{
		{"no reason", with(func(r *Request) { r.Reason = "  " }), light, ErrInvalid, "reason is required"},
		{"long reason", with(func(r *Request) { r.Reason = strings.Repeat("灯", MaxReasonRunes+1) }), light, ErrInvalid, "501 characters"},
		{"bad point name", with(func(r *Request) { r.Point = "Circuit 2" }), light, ErrInvalid, "point"},
		{"unknown point", with(func(r *Request) { r.Point = "circuit9_on" }), light, ErrRefused, "unknown point"},
		{"not writable", with(func(r *Request) { r.Point = "power_w" }), light, ErrRefused, "not writable"},
		{"out of range", with(func(r *Request) { r.Value = 2 }), light, ErrRefused, "value not allowed"},
		{"elevator", with(func(r *Request) { r.Point = "floor" }), Device{ID: "g-el-1", Template: ts["elevator"]}, ErrRefused, "not writable"},
		{"critical alarm", ok, Device{ID: "g-light-1", Template: ts["lighting-panel"], Alarms: []Alarm{{ID: "a-17", Name: "panel overtemperature", Severity: "critical"}}}, ErrRefused, "active critical alarm (a-17"},
		{"interlocked", ok, Device{ID: "g-light-1", Template: ts["lighting-panel"], Alarms: []Alarm{{ID: "a-18", Name: "door open", Severity: "major", Interlocks: []string{"circuit2_on"}}}}, ErrRefused, `point "circuit2_on" of device "g-light-1" is interlocked while alarm a-18`},
		{"no template", ok, Device{ID: "g-light-1"}, ErrRefused, "no template"},
	}
	for _, c := range cases {
		_, err := Check(c.r, c.d)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Check = %v, want %v containing %q", c.name, err, c.want, c.msg)
		}
	}
}

func TestLifeCycle(t *testing.T) {
	now := time.UnixMilli(1_780_000_000_000).UTC()
	r := Request{Device: "g-light-1", Point: "circuit2_on", Value: 1, Reason: " garage lit at noon ", By: "pm-garden"}
	c, err := New("cmd-1", r, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateAccepted || c.Reason != "garage lit at noon" {
		t.Fatalf("new command: state %q reason %q", c.State, c.Reason)
	}
	// The wire form is what the gateway decodes, expiring after the point's expiry.
	w, err := protocol.DecodeCommand(protocol.EncodeCommand(c.Wire))
	if err != nil {
		t.Fatal(err)
	}
	if w.ExpiresAt-w.IssuedAt != 60_000 || w.By != "pm-garden" || w.Point != "circuit2_on" || w.Value != 1 {
		t.Fatalf("wire command = %+v", w)
	}
	if err := c.MarkSent(now.Add(time.Millisecond)); err != nil || c.State != StateSent {
		t.Fatalf("MarkSent: %v, state %s", err, c.State)
	}
	if err := c.MarkSent(now); !errors.Is(err, ErrTransition) {
		t.Errorf("second MarkSent = %v, want ErrTransition", err)
	}
	before, after := 0.0, 1.0
	res := protocol.Event{Kind: protocol.EventCommand, Device: "g-light-1", CommandID: "cmd-1", State: protocol.CommandApplied,
		Before: &before, After: &after, TS: now.Add(300 * time.Millisecond).UnixMilli()}
	other := res
	other.CommandID = "cmd-2"
	if err := c.ApplyResult(other); !errors.Is(err, ErrTransition) {
		t.Errorf("result of another command = %v, want ErrTransition", err)
	}
	notFinal := res
	notFinal.State = StateSent
	if err := c.ApplyResult(notFinal); !errors.Is(err, ErrTransition) {
		t.Errorf("non-final result = %v, want ErrTransition", err)
	}
	if err := c.ApplyResult(res); err != nil {
		t.Fatal(err)
	}
	if c.State != StateApplied || *c.Before != 0 || *c.After != 1 || !c.Changed.Equal(now.Add(300*time.Millisecond)) {
		t.Fatalf("after result: %+v", c)
	}
	// A redelivered or contradicting result does not change the outcome.
	failed := res
	failed.State, failed.Cause = protocol.CommandFailed, "read_back_mismatch"
	if err := c.ApplyResult(failed); !errors.Is(err, ErrTransition) || c.State != StateApplied {
		t.Errorf("second outcome = %v, state %s; want ErrTransition, applied", err, c.State)
	}

	// An outcome may arrive before the publish is recorded.
	c2, _ := New("cmd-3", r, now, time.Minute)
	exp := protocol.Event{Kind: protocol.EventCommand, CommandID: "cmd-3", State: protocol.CommandExpired, Cause: "expired", TS: now.UnixMilli()}
	if err := c2.ApplyResult(exp); err != nil || c2.State != StateExpired {
		t.Fatalf("expired from accepted: %v, %s", err, c2.State)
	}
	if err := c2.MarkSent(now); !errors.Is(err, ErrTransition) {
		t.Errorf("MarkSent after outcome = %v, want ErrTransition", err)
	}
}

func TestNewRefusesBadWire(t *testing.T) {
	r := Request{Device: "g-light-1", Point: "circuit2_on", Value: 1, Reason: "x", By: "pm-garden"}
	if _, err := New("bad id!", r, time.Now(), time.Minute); err == nil {
		t.Fatal("New accepted an invalid id")
	}
	if _, err := New("cmd-1", r, time.Now(), 0); err == nil {
		t.Fatal("New accepted a zero expiry")
	}
}
