package main

import (
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"
)

// Remote control with alarms.owner: lease (issues 16 and 17): two
// bin/cloud processes, each with the ingest and the API, one broker, one
// database. A command posted through either replica is published once (by
// the owner's command desk), the gateway's result is recorded once
// (whichever ingest receives it hands it to the owner), and the command's
// state and history are the same through both replicas. After the owner
// is killed, the new owner finishes the command that was in flight (its
// result comes after the takeover), shows the commands from the log and
// takes new ones. A test client plays the gateway (the real edge is covered by
// TestCommandsThroughRealProcesses).
//
// About 20 s; PLANTROOM_SKIP_PROCESS_TESTS=1 skips it.
func TestCommandsWithAlarmLease(t *testing.T) {
	processTest(t)
	bin, b, a, bp := replicaPair(t)

	a.start(t, bin)
	waitFor(t, 60*time.Second, "a to take the alarm lease", func() bool { return a.owns() })
	bp.start(t, bin)
	waitFor(t, 30*time.Second, "b's API to forward commands to a", func() bool {
		var list struct{ Commands []commandView }
		return bp.try(http.MethodGet, "/api/v1/devices/garden-lighting-1/commands", "", &list) == http.StatusOK
	})
	if bp.owns() {
		t.Fatal("b took the lease while a holds it")
	}

	// The gateway: every command it receives is counted and answered
	// with an applied result on its events topic.
	gw := gatewayClient(t, b.Addr())
	var mu sync.Mutex
	received := map[string]int{}
	seq := uint64(0)
	results := make(chan protocol.Command, 16)
	tok := gw.Subscribe(gardenRef.DownlinkTopic(protocol.DownCmd), 1, func(_ paho.Client, m paho.Message) {
		c, err := protocol.DecodeCommand(m.Payload())
		if err != nil {
			t.Errorf("the gateway received a command that does not decode: %v", err)
			return
		}
		mu.Lock()
		received[c.ID]++
		mu.Unlock()
		results <- c
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway subscribe: %v", tok.Error())
	}
	answer := func(c protocol.Command) {
		t.Helper()
		seq++
		before, after := 1-c.Value, c.Value
		ev := protocol.Event{V: protocol.MessageVersion, Gateway: gardenRef.Gateway, Seq: seq, Kind: protocol.EventCommand,
			Device: c.Device, TS: time.Now().UnixMilli(), CommandID: c.ID, State: protocol.CommandApplied, Before: &before, After: &after}
		if tok := gw.Publish(gardenRef.Topic(protocol.KindEvents), 1, false, protocol.EncodeEvent(ev)); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish the result of %s: %v", c.ID, tok.Error())
		}
	}

	// One command through each replica: b (forwarded to the owner) and a.
	var ids []string
	for _, r := range []*cloudReplica{bp, a} {
		var c commandView
		r.call(t, http.MethodPost, "/api/v1/devices/garden-lighting-1/commands",
			`{"point":"circuit1_on","value":1,"reason":"through `+r.name+`"}`, http.StatusAccepted, &c)
		if c.State != "sent" {
			t.Fatalf("command through %s: %+v, want sent", r.name, c)
		}
		select {
		case got := <-results:
			if got.ID != c.ID || got.Device != "garden-lighting-1" || got.Point != "circuit1_on" || got.Value != 1 || got.By != "pm-garden" {
				t.Fatalf("the gateway received %+v for command %s", got, c.ID)
			}
			answer(got)
		case <-time.After(30 * time.Second):
			t.Fatalf("the gateway received no command %s posted through %s", c.ID, r.name)
		}
		ids = append(ids, c.ID)
	}

	// Each is applied once, and reads the same through both replicas.
	applied := func(r *cloudReplica, id string) bool {
		var got commandView
		return r.try(http.MethodGet, "/api/v1/commands/"+id, "", &got) == http.StatusOK && got.State == "applied"
	}
	for _, id := range ids {
		waitFor(t, 30*time.Second, "command "+id+" applied through a and b", func() bool { return applied(a, id) && applied(bp, id) })
		for _, r := range []*cloudReplica{a, bp} {
			var got commandView
			r.call(t, http.MethodGet, "/api/v1/commands/"+id, "", http.StatusOK, &got)
			if h := historyStates(got); h != "accepted sent applied" || got.Before == nil || *got.Before != 0 || got.After == nil || *got.After != 1 {
				t.Errorf("command %s through %s: history %q, before %v, after %v; want accepted sent applied, 0 → 1", id, r.name, h, got.Before, got.After)
			}
		}
	}
	mu.Lock()
	for _, id := range ids {
		if received[id] != 1 {
			t.Errorf("the gateway received command %s %d times, want once", id, received[id])
		}
	}
	if len(received) != len(ids) {
		t.Errorf("the gateway received %d commands, want %d: %v", len(received), len(ids), received)
	}
	mu.Unlock()

	// A third command is sent, and the owner dies before its result: b
	// takes over, restores it from the log and applies the result that
	// comes after the takeover; it shows every command from the log and
	// takes a new one.
	var pending commandView
	bp.call(t, http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", `{"point":"circuit1_on","value":1,"reason":"before the owner dies"}`, http.StatusAccepted, &pending)
	var held protocol.Command
	select {
	case held = <-results:
		if held.ID != pending.ID {
			t.Fatalf("the gateway received %s, want %s", held.ID, pending.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway received no command %s", pending.ID)
	}
	if err := a.child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.child.exited
	waitFor(t, 60*time.Second, "b to own alarms, work orders and commands", func() bool {
		return bp.owns() && applied(bp, ids[0])
	})
	var sent commandView
	bp.call(t, http.MethodGet, "/api/v1/commands/"+pending.ID, "", http.StatusOK, &sent)
	if sent.State != "sent" {
		t.Errorf("command %s through the new owner before its result: %q, want sent", pending.ID, sent.State)
	}
	answer(held)
	waitFor(t, 30*time.Second, "command "+pending.ID+" applied through the new owner", func() bool { return applied(bp, pending.ID) })
	bp.call(t, http.MethodGet, "/api/v1/commands/"+pending.ID, "", http.StatusOK, &sent)
	if h := historyStates(sent); h != "accepted sent applied" {
		t.Errorf("command %s after the takeover: history %q, want accepted sent applied", pending.ID, h)
	}
	var list struct{ Commands []commandView }
	bp.call(t, http.MethodGet, "/api/v1/devices/garden-lighting-1/commands", "", http.StatusOK, &list)
	if len(list.Commands) != 3 {
		t.Errorf("commands of garden-lighting-1 through the new owner: %+v, want 3", list.Commands)
	}
	for _, c := range list.Commands {
		if c.State != "applied" {
			t.Errorf("command %s through the new owner: %s, want applied", c.ID, c.State)
		}
	}
	var c commandView
	bp.call(t, http.MethodPost, "/api/v1/devices/garden-lighting-1/commands", `{"point":"circuit1_on","value":0,"reason":"after the takeover"}`, http.StatusAccepted, &c)
	select {
	case got := <-results:
		if got.ID != c.ID {
			t.Fatalf("the gateway received %s, want %s", got.ID, c.ID)
		}
		answer(got)
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway received no command %s after the takeover", c.ID)
	}
	waitFor(t, 30*time.Second, "command "+c.ID+" applied through b", func() bool { return applied(bp, c.ID) })
}

// historyStates is a command's history as its states, space-separated.
func historyStates(c commandView) string {
	s := ""
	for i, h := range c.History {
		if i > 0 {
			s += " "
		}
		s += h.State
	}
	return s
}
