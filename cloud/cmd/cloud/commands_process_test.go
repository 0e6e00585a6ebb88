package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"

	"github.com/plantroom/plantroom/internal/nettest"
)

// Remote control (issue 16) through real processes: a project manager's
// command goes from the API through bin/cloud and the broker to the real
// edge agent, which writes the simulated lighting panel's coil over Modbus
// TCP, reads it back and reports; the ingest turns the result into the
// command's state (applied), and the next readings show the circuit
// switched; the same for the garden garage lights, a Tasmota relay on the
// edge's plant-room broker. An elevator command is refused at the API. Once with the
// cloud's embedded broker, once with Debian's mosquitto (ACL as
// docs/cloud.md shows).
//
// Through the same processes, what the gateway must refuse or report: a
// panel whose outputs are stuck (devsim fault) fails read_back_mismatch; a
// command that waited at the broker while the edge was down until after
// its expiry is reported expired and not executed; with mosquitto, the
// same command delivered twice is executed once and a forged out-of-range
// setpoint is refused by the gateway; a tripped pump's
// run_command, interlocked by the demo's pump-fault rule, is refused.
//
// About a minute each, one after the other; PLANTROOM_SKIP_PROCESS_TESTS=1 skips them.
func TestCommandsThroughRealProcesses(t *testing.T) {
	processTest(t) // beside the other plant-room tests; its own two one after the other
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			p := newPlantRoom(t)
			var mq string
			if broker == "mosquitto" {
				mq = p.useMosquitto(t)
			}
			p.shortExpiry(t, "lighting-panel", "circuit4_on", "3s")
			p.startCloud(t)
			p.startEdge(t)
			p.waitAllOnline(t, 90*time.Second)
			commandRoundTrip(t, p)
			pumpCommands(t, p)
			tripped := startTrip(t, p) // trips 20 s later, meanwhile:
			readBackMismatch(t, p)
			if broker == "mosquitto" {
				redeliveredOnce(t, p, mq)
			}
			if broker == "embedded" {
				commandLatency(t, p)
			}
			interlocked(t, p, tripped)
			expiredAfterOutage(t, p)
		})
	}
}

// commandLatency switches a circuit n times in a row (PLANTROOM_COMMAND_SAMPLES,
// default 10; make bench asks for 200) and logs accepted → applied p50
// and p99, the times the cloud recorded (accepted) and the gateway
// reported (applied). Every command must be applied.
func commandLatency(t *testing.T, p *plantRoom) {
	n := 10
	if v := os.Getenv("PLANTROOM_COMMAND_SAMPLES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("PLANTROOM_COMMAND_SAMPLES=%q: want a positive number", v)
		}
	}
	value := p.latest(t, "garden-lighting-1", "circuit2_on")
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		value = 1 - value
		c := p.command(t, "demo-tech-garden-1", "garden-lighting-1", fmt.Sprintf(`{"point":"circuit2_on","value":%v,"reason":"latency sample %d"}`, value, i), http.StatusAccepted)
		var got commandView
		waitFor(t, 30*time.Second, "command "+c.ID+" final", func() bool {
			got = p.getCommand(t, c.ID)
			return got.State != "sent" && got.State != "accepted" && len(got.History) == 3
		})
		if got.State != "applied" {
			t.Fatalf("sample %d: %+v", i, got)
		}
		ds = append(ds, got.History[2].At.Sub(got.History[0].At))
	}
	slices.Sort(ds)
	q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
	t.Logf("command latency: samples=%d p50_ms=%d p99_ms=%d max_ms=%d", n, q(0.5).Milliseconds(), q(0.99).Milliseconds(), ds[len(ds)-1].Milliseconds())
}

func commandRoundTrip(t *testing.T, p *plantRoom) {
	// The circuit's current state, and the other value.
	was := p.latest(t, "garden-lighting-1", "circuit1_on")
	want := 1 - was
	c := p.command(t, "demo-pm-garden", "garden-lighting-1", fmt.Sprintf(`{"point":"circuit1_on","value":%v,"reason":"测试 process test"}`, want), http.StatusAccepted)
	if c.State != "sent" {
		t.Fatalf("POST answered state %q: %+v", c.State, c)
	}
	var got commandView
	waitFor(t, 30*time.Second, "the command applied", func() bool {
		got = p.getCommand(t, c.ID)
		return got.State != "sent" && got.State != "accepted"
	})
	if got.State != "applied" || got.Before == nil || *got.Before != was || got.After == nil || *got.After != want {
		t.Fatalf("command ended %+v, want applied from %v to %v", got, was, want)
	}
	var states []string
	for _, h := range got.History {
		states = append(states, h.State+"/"+h.Who)
	}
	if strings.Join(states, " ") != "accepted/pm-garden sent/cloud applied/gw-garden-1" {
		t.Errorf("history %v", states)
	}
	t.Logf("command %s: accepted → applied in %s", c.ID, got.History[len(got.History)-1].At.Sub(got.History[0].At))
	// The device's maintenance record holds it (who, why, before/after).
	var record struct {
		Commands []struct {
			ID, By, Reason, State string
			Before, After         *float64
		}
	}
	p.api(t, "/api/v1/devices/garden-lighting-1/history", &record)
	if len(record.Commands) == 0 || record.Commands[0].ID != c.ID || record.Commands[0].By != "pm-garden" ||
		record.Commands[0].Reason != "测试 process test" || record.Commands[0].State != "applied" ||
		record.Commands[0].After == nil || *record.Commands[0].After != want {
		t.Errorf("the device's maintenance record: %+v", record.Commands)
	}
	// The next readings show the circuit switched.
	waitFor(t, 30*time.Second, "the switched circuit in the device's values", func() bool {
		return p.latest(t, "garden-lighting-1", "circuit1_on") == want
	})
	// The garden garage lights, a Tasmota relay, and the landscape
	// lights, a Shelly Plus 1PM, both on the edge's plant-room MQTT
	// broker. The edge publishes the device's own command
	// (cmnd/garden_garage/POWER; Switch.Set on shellyplus1pm-garden01/rpc),
	// the simulated relay switches and reports its state (and the Shelly
	// answers the request): applied, and the next readings show the relay
	// and its power.
	for _, relay := range []string{"garden-plug-1", "garden-shelly-1"} {
		wasRelay := p.latest(t, relay, "switch_on")
		wantRelay := 1 - wasRelay
		rc := p.command(t, "demo-pm-garden", relay, fmt.Sprintf(`{"point":"switch_on","value":%v,"reason":"灯 process test"}`, wantRelay), http.StatusAccepted)
		waitFor(t, 30*time.Second, relay+": the relay command applied", func() bool {
			got = p.getCommand(t, rc.ID)
			return got.State != "sent" && got.State != "accepted"
		})
		if got.State != "applied" || got.After == nil || *got.After != wantRelay {
			t.Fatalf("%s: relay command ended %+v, want applied to %v", relay, got, wantRelay)
		}
		waitFor(t, 30*time.Second, relay+": the switched relay in the device's values", func() bool {
			return p.latest(t, relay, "switch_on") == wantRelay && (p.latest(t, relay, "power_w") > 0) == (wantRelay == 1)
		})
	}
	// An elevator is never writable: refused at the API, nothing sent.
	p.command(t, "demo-pm-garden", "garden-elevator-1", `{"point":"floor","value":3,"reason":"x"}`, http.StatusUnprocessableEntity)
	// HQ may not command.
	p.command(t, "demo-hq-admin", "garden-lighting-1", `{"point":"circuit1_on","value":1,"reason":"x"}`, http.StatusForbidden)
}

// pumpCommands drives the garden's duty/standby booster set through the
// same processes: a lower pressure setpoint (function 06 on the VFD's
// holding register, read back) that the following readings show the
// header pressure settling at; a stop of the duty pump, after which its
// flow is 0 and the standby runs and has duty; the stopped pump released
// again. A setpoint outside the template's 2–6 bar is refused at the API.
func pumpCommands(t *testing.T, p *plantRoom) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("pump commands: %s", time.Since(start).Round(time.Millisecond)) }()
	apply := func(device, point string, value float64, reason string) commandView {
		t.Helper()
		c := p.command(t, "demo-pm-garden", device, fmt.Sprintf(`{"point":%q,"value":%v,"reason":%q}`, point, value, reason), http.StatusAccepted)
		var got commandView
		waitFor(t, 30*time.Second, "command "+c.ID+" to "+device+" final", func() bool {
			got = p.getCommand(t, c.ID)
			return got.State != "sent" && got.State != "accepted"
		})
		if got.State != "applied" || got.After == nil || *got.After != value {
			t.Fatalf("%s %s=%v ended %+v, want applied", device, point, value, got)
		}
		return got
	}
	// Setpoint: 2.5 bar is within the drive's curve at any demand of the
	// simulated set, so the header pressure can settle there.
	was := p.latest(t, "garden-pump-1", "setpoint_bar")
	sp := 2.5
	if math.Abs(was-sp) < 0.01 {
		sp = 2.6
	}
	got := apply("garden-pump-1", "setpoint_bar", sp, "夜间降压 process test")
	if got.Before == nil || math.Abs(*got.Before-was) > 0.005 {
		t.Errorf("setpoint before %v, want %v (the last reading)", got.Before, was)
	}
	duty := p.dutyPump(t)
	waitFor(t, 60*time.Second, fmt.Sprintf("%s's readings: setpoint %v and the pressure settled there", duty, sp), func() bool {
		return math.Abs(p.latest(t, duty, "setpoint_bar")-sp) < 0.005 &&
			math.Abs(p.latest(t, duty, "outlet_pressure_bar")-sp) < 0.15
	})
	p.command(t, "demo-pm-garden", "garden-pump-1", `{"point":"setpoint_bar","value":9,"reason":"out of range"}`, http.StatusUnprocessableEntity)

	// Stop the duty pump by hand: the standby takes over.
	standby := map[string]string{"garden-pump-1": "garden-pump-2", "garden-pump-2": "garden-pump-1"}[duty]
	if got := apply(duty, "run_command", 0, "检修 process test"); got.Before == nil || *got.Before != 1 {
		t.Errorf("run_command before %v, want 1", got.Before)
	}
	waitFor(t, 60*time.Second, duty+" stopped without flow and "+standby+" running with duty, in the readings", func() bool {
		return p.latest(t, duty, "running") == 0 && p.latest(t, duty, "flow_m3h") == 0 &&
			p.latest(t, standby, "running") == 1 && p.latest(t, standby, "duty") == 1 && p.latest(t, standby, "flow_m3h") > 0
	})
	// Released again: it may run (as the standby now).
	apply(duty, "run_command", 1, "检修完毕 process test")
	waitFor(t, 60*time.Second, duty+"'s run_command 1 in the readings", func() bool {
		return p.latest(t, duty, "run_command") == 1
	})
}

// waitFinal waits for command id's outcome (applied, failed, rejected,
// expired) with every step recorded, and returns it.
func (p *plantRoom) waitFinal(t *testing.T, id string, timeout time.Duration) commandView {
	t.Helper()
	var got commandView
	waitFor(t, timeout, "command "+id+" final", func() bool {
		got = p.getCommand(t, id)
		return got.State != "sent" && got.State != "accepted" && len(got.History) >= 3
	})
	return got
}

// simValue is the simulator's own value of a device's metric (what the
// equipment does, not what the edge read).
func (p *plantRoom) simValue(t *testing.T, device, metric string) float64 {
	t.Helper()
	var st struct{ Values map[string]float64 }
	p.simGet(t, "/devices/"+device, &st)
	v, ok := st.Values[metric]
	if !ok {
		t.Fatalf("the simulator has no %s of %s", metric, device)
	}
	return v
}

// readBackMismatch: the panel acknowledges the write and changes nothing
// (devsim fault stuck_outputs, a welded output relay); the edge reads the
// coil back, finds the old value and reports failed read_back_mismatch
// with before = after = the old value.
func readBackMismatch(t *testing.T, p *plantRoom) {
	t.Helper()
	was := p.latest(t, "garden-lighting-1", "circuit3_on")
	p.sim(t, "POST", "/devices/garden-lighting-1/fault", `{"stuck_outputs":true}`)
	c := p.command(t, "demo-pm-garden", "garden-lighting-1", fmt.Sprintf(`{"point":"circuit3_on","value":%v,"reason":"stuck outputs process test"}`, 1-was), http.StatusAccepted)
	got := p.waitFinal(t, c.ID, 30*time.Second)
	p.sim(t, "DELETE", "/devices/garden-lighting-1/fault")
	if got.State != "failed" || got.Cause != "read_back_mismatch" || got.Before == nil || *got.Before != was || got.After == nil || *got.After != was ||
		got.History[len(got.History)-1].Who != "gw-garden-1" {
		t.Fatalf("command to stuck outputs ended %+v, want failed read_back_mismatch from the gateway, before = after = %v", got, was)
	}
	if v := p.simValue(t, "garden-lighting-1", "circuit3_on"); v != was {
		t.Fatalf("circuit3_on is %v in the simulator, want the stuck %v", v, was)
	}
}

// startTrip develops a dry run on the standby pump (the simulated drive
// trips 20 s later) and returns its id.
func startTrip(t *testing.T, p *plantRoom) string {
	t.Helper()
	pump := map[string]string{"garden-pump-1": "garden-pump-2", "garden-pump-2": "garden-pump-1"}[p.dutyPump(t)]
	p.sim(t, "POST", "/devices/"+pump+"/events/dry_run")
	return pump
}

// interlocked: once the tripped pump's pump-fault alarm is active, its
// run_command (interlocked by that rule in configs/rules.yaml) is refused
// with the reason; the alarm is major, so its setpoint is not. The drive
// is reset after.
func interlocked(t *testing.T, p *plantRoom, pump string) {
	t.Helper()
	p.waitAlarm(t, pump, "pump-fault", "active", "", 90*time.Second)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.apiAddr+"/api/v1/devices/"+pump+"/commands",
		strings.NewReader(`{"point":"run_command","value":1,"reason":"remote restart after a trip"}`))
	req.Header.Set("Authorization", "Bearer demo-pm-garden")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error struct{ Message string } }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if msg := e.Error.Message; resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, "interlocked") || !strings.Contains(msg, "run_command") {
		t.Fatalf("run_command of the tripped %s: %d %q, want 422 interlocked", pump, resp.StatusCode, msg)
	}
	t.Logf("interlocked: %s", e.Error.Message)
	sp := p.latest(t, pump, "setpoint_bar")
	c := p.command(t, "demo-pm-garden", pump, fmt.Sprintf(`{"point":"setpoint_bar","value":%v,"reason":"not interlocked"}`, sp), http.StatusAccepted)
	if got := p.waitFinal(t, c.ID, 30*time.Second); got.State != "applied" {
		t.Fatalf("setpoint of the tripped pump: %+v", got)
	}
	p.sim(t, "POST", "/devices/"+pump+"/events/clear")
}

// expiredAfterOutage: the edge is down when the command is sent; the
// broker keeps it for the gateway's persistent session; the edge comes
// back after the command's expiry (circuit4_on's is 3 s here), reports it
// expired and does not execute it.
func expiredAfterOutage(t *testing.T, p *plantRoom) {
	t.Helper()
	was := p.latest(t, "garden-lighting-1", "circuit4_on")
	p.stopEdge(t)
	// The edge is down once the cloud has its offline status: its
	// connection is gone at the broker too, which keeps what comes next
	// for the gateway's persistent session.
	waitFor(t, 60*time.Second, "the gateway's devices offline in the cloud", func() bool {
		return strings.HasPrefix(p.deviceState(t, "garden-lighting-1"), "offline/")
	})
	c := p.command(t, "demo-pm-garden", "garden-lighting-1", fmt.Sprintf(`{"point":"circuit4_on","value":%v,"reason":"outage process test"}`, 1-was), http.StatusAccepted)
	if c.State != "sent" {
		t.Fatalf("POST during the outage answered %+v, want sent (held by the broker)", c)
	}
	expires := p.getCommand(t, c.ID).ExpiresAt
	if d := expires.Sub(c.IssuedAt); d != 3*time.Second {
		t.Fatalf("circuit4_on's command expires %s after it was issued, want the test template's 3s", d)
	}
	waitFor(t, 30*time.Second, "the command's expiry to pass during the outage", func() bool { return time.Now().After(expires.Add(500 * time.Millisecond)) })
	p.startEdge(t)
	got := p.waitFinal(t, c.ID, 60*time.Second)
	if got.State != "expired" || got.History[len(got.History)-1].Who != "gw-garden-1" {
		t.Fatalf("command after the outage ended %+v, want expired, reported by the gateway", got)
	}
	p.waitAllOnline(t, 90*time.Second)
	if v := p.simValue(t, "garden-lighting-1", "circuit4_on"); v != was {
		t.Fatalf("the expired command was executed: circuit4_on is %v, was %v", v, was)
	}
}

// redeliveredOnce: the command the cloud published is delivered to the
// gateway a second time (republished on mosquitto with the cloud's
// account, byte for byte, as a broker redelivers an unacknowledged QoS 1
// message) after the circuit was switched back by a second command; the
// edge does not execute it again. Then a forged command (setpoint 7.5 bar,
// outside the template's range) is published on the same topic past the
// cloud's checks: the gateway refuses it, nothing is written. A third
// command, to another point, published after both, is applied: both were
// seen before it.
func redeliveredOnce(t *testing.T, p *plantRoom, brokerURL string) {
	t.Helper()
	const topic = "plantroom/v2/acme/garden/gw-garden-1/down/cmd"
	seen := make(chan []byte, 16)
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID("process-test-observer").
		SetUsername("plantroom-ingest").SetPassword("ingest-secret").SetCleanSession(true).SetAutoReconnect(false)
	cl := paho.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	defer cl.Disconnect(50)
	if tok := cl.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { seen <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	was := p.latest(t, "garden-lighting-1", "circuit2_on")
	body := func(point string, v float64, why string) string {
		return fmt.Sprintf(`{"point":%q,"value":%v,"reason":%q}`, point, v, why)
	}
	first := p.command(t, "demo-pm-garden", "garden-lighting-1", body("circuit2_on", 1-was, "redelivery process test"), http.StatusAccepted)
	var wire []byte
	waitFor(t, 30*time.Second, "the observer to see command "+first.ID, func() bool {
		for {
			select {
			case b := <-seen:
				var c struct{ ID string }
				if json.Unmarshal(b, &c) == nil && c.ID == first.ID {
					wire = b
					return true
				}
			default:
				return false
			}
		}
	})
	if got := p.waitFinal(t, first.ID, 30*time.Second); got.State != "applied" {
		t.Fatalf("first command %+v", got)
	}
	if got := p.waitFinal(t, p.command(t, "demo-pm-garden", "garden-lighting-1", body("circuit2_on", was, "switched back"), http.StatusAccepted).ID, 30*time.Second); got.State != "applied" {
		t.Fatalf("switching back: %+v", got)
	}
	if tok := cl.Publish(topic, 1, false, wire); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("redeliver: %v", tok.Error())
	}
	// A forged command on the same topic, bypassing the cloud's checks: a
	// setpoint outside the pump template's 2–6 bar. The gateway checks
	// against its own template and refuses it; nothing is written.
	sp := p.simValue(t, "garden-pump-1", "setpoint_bar")
	now := time.Now()
	forged := protocol.EncodeCommand(protocol.Command{ID: "forged-" + strconv.FormatInt(now.UnixNano(), 36), Device: "garden-pump-1",
		Point: "setpoint_bar", Value: 7.5, IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(time.Minute).UnixMilli(), By: "pm-garden"})
	if tok := cl.Publish(topic, 1, false, forged); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("forged command: %v", tok.Error())
	}
	marker := p.latest(t, "garden-lighting-1", "circuit1_on")
	if got := p.waitFinal(t, p.command(t, "demo-pm-garden", "garden-lighting-1", body("circuit1_on", marker, "after the redelivery"), http.StatusAccepted).ID, 30*time.Second); got.State != "applied" {
		t.Fatalf("marker command: %+v", got)
	}
	if v := p.simValue(t, "garden-lighting-1", "circuit2_on"); v != was {
		t.Fatalf("the redelivered command was executed again: circuit2_on is %v, want %v", v, was)
	}
	if v := p.simValue(t, "garden-pump-1", "setpoint_bar"); v != sp {
		t.Fatalf("the forged out-of-range setpoint was written: setpoint_bar %v, was %v", v, sp)
	}
	if got := p.getCommand(t, first.ID); got.State != "applied" || len(got.History) != 3 {
		t.Fatalf("the redelivered command's record changed: %+v", got)
	}
}

type commandView struct {
	ID        string    `json:"id"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	State     string    `json:"state"`
	Cause     string    `json:"cause"`
	Before    *float64  `json:"before"`
	After     *float64  `json:"after"`
	History   []struct {
		State string    `json:"state"`
		Who   string    `json:"who"`
		At    time.Time `json:"at"`
	} `json:"history"`
}

func (p *plantRoom) command(t *testing.T, token, device, body string, status int) commandView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.apiAddr+"/api/v1/devices/"+device+"/commands", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST command: %v", err)
	}
	defer resp.Body.Close()
	var v commandView
	if resp.StatusCode != status {
		var e any
		json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("POST command to %s as %s: %s %v, want %d", device, token, resp.Status, e, status)
	}
	if status == http.StatusAccepted {
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (p *plantRoom) getCommand(t *testing.T, id string) commandView {
	t.Helper()
	var v commandView
	p.api(t, "/api/v1/commands/"+id, &v)
	return v
}

// latest is a device's newest value of metric from the device API; it
// fails when there is none.
func (p *plantRoom) latest(t *testing.T, device, metric string) float64 {
	t.Helper()
	var d struct {
		Values map[string]struct{ Value float64 } `json:"values"`
	}
	p.api(t, "/api/v1/devices/"+device, &d)
	v, ok := d.Values[metric]
	if !ok {
		t.Fatalf("no %s of %s yet", metric, device)
	}
	return v.Value
}

// shortExpiry gives the cloud a copy of the templates in which template's
// point expires after expiry (the cloud stamps expires_at from it; the
// edge checks the stamp). Call it before startCloud.
func (p *plantRoom) shortExpiry(t *testing.T, template, point, expiry string) {
	t.Helper()
	root, err := filepath.Abs("../../../configs/templates")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(p.dir, "cloud-templates")
	if err := os.CopyFS(dir, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, template+".yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	old := "{metric: " + point + ","
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no point %s", f, point)
	}
	write(t, f, strings.Replace(string(b), old, old+" expiry: "+expiry+",", 1))
	cfg, err := os.ReadFile(p.cloudCfg)
	if err != nil {
		t.Fatal(err)
	}
	line := "templates: " + filepath.Dir(root) + "/templates\n"
	if !strings.Contains(string(cfg), line) {
		t.Fatalf("cloud configuration without %q", line)
	}
	write(t, p.cloudCfg, strings.Replace(string(cfg), line, "templates: "+dir+"\n", 1))
}

// stopEdge stops bin/edge-agent (SIGTERM) and waits for it to exit.
func (p *plantRoom) stopEdge(t *testing.T) {
	t.Helper()
	p.edge.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.edge.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("bin/edge-agent did not stop within 30s of SIGTERM")
	}
}

// useMosquitto points the cloud (ingest and API, no embedded broker) and
// the edge at a mosquitto with the password file and ACL of docs/cloud.md,
// and returns its URL.
func (p *plantRoom) useMosquitto(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	write(t, pwFile, "")
	for u, pw := range map[string]string{"plantroom-ingest": "ingest-secret", "gw-garden-1": "demo-gw-garden-1-secret"} {
		if out, err := exec.Command("mosquitto_passwd", "-b", pwFile, u, pw).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	const gw = "plantroom/v2/acme/garden/gw-garden-1"
	write(t, aclFile, "user plantroom-ingest\ntopic read plantroom/v2/#\ntopic read plantroom/v1/#\n"+
		"topic write plantroom/v2/+/+/+/down/ack\ntopic write plantroom/v2/+/+/+/down/cmd\n\n"+
		"user gw-garden-1\ntopic write "+gw+"/telemetry\ntopic write "+gw+"/status\ntopic write "+gw+"/events\ntopic read "+gw+"/down/#\n")
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{
		Config: fmt.Sprintf("user root\nallow_anonymous false\npassword_file %s\nacl_file %s\nmax_inflight_messages 200\nmax_queued_messages 0\n", pwFile, aclFile),
	})
	b, err := os.ReadFile(p.cloudCfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "broker:") {
			lines[i] = fmt.Sprintf("components: [ingest, api]\nbroker: {embedded: false, external: {url: %q, username: plantroom-ingest, password: ingest-secret}}", m.URL())
		}
	}
	write(t, p.cloudCfg, strings.Join(lines, "\n"))
	e, err := os.ReadFile(p.edgeCfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p.edgeCfg, strings.Replace(string(e), "tcp://"+p.brokerAddr, m.URL(), 1))
	return m.URL()
}
