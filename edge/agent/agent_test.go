package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/internal/buildinfo"
	"github.com/plantroom/plantroom/protocol"
)

// Steady state with the simulators: every Modbus template and both MQTT
// formats reach the cloud broker with every metric of their template, the
// gateway announces itself, and /healthz and /metrics tell the truth. Then
// a reload swaps a device without touching the queue.
func TestSteadyStateWithSimulators(t *testing.T) {
	cloud, _ := startCloud(t)
	modbusSim := startSim(t, sim.MQTTConfig{},
		sim.DeviceConfig{ID: "meter-1", Template: "sdm630"},
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "elevator-1", Template: "elevator"},
		sim.DeviceConfig{ID: "lighting-1", Template: "lighting-panel"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd"},
	)
	dir := t.TempDir()
	devices := "devices:\n" +
		deviceLine(modbusSim, "meter-1", "sdm630", "200ms") +
		deviceLine(modbusSim, "pump-1", "pump-vfd", "200ms") +
		deviceLine(modbusSim, "elevator-1", "elevator", "200ms") +
		deviceLine(modbusSim, "lighting-1", "lighting-panel", "200ms") +
		"  - {id: plug-1, template: tasmota-plug, address: \"mqtt:garden_garage\"}\n" +
		"  - {id: shelly-1, template: shelly-plus-1pm, address: \"mqtt:shellyplus1pm-garden01\"}\n"
	mqttSection := "mqtt: {embedded: {listen: \"127.0.0.1:0\", users: [{username: devsim, password: devsim-demo}]}}\nreport: {heartbeat: 1s}\n"
	text := agentYAML(cloud.URL(), dir, mqttSection+devices)
	a := startAgent(t, text)

	// The MQTT devices publish into the agent's embedded broker.
	startSim(t, sim.MQTTConfig{Broker: "tcp://" + a.MQTTAddr(), Username: "devsim", Password: "devsim-demo", Interval: config.D(100 * time.Millisecond)},
		sim.DeviceConfig{ID: "plug-1", Template: "tasmota-plug", Topic: "garden_garage"},
		sim.DeviceConfig{ID: "shelly-1", Template: "shelly-plus-1pm", Topic: "shellyplus1pm-garden01"},
	)
	ts, err := config.LoadTemplates(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"meter-1": "sdm630", "pump-1": "pump-vfd", "elevator-1": "elevator", "lighting-1": "lighting-panel",
		"plug-1": "tasmota-plug", "shelly-1": "shelly-plus-1pm"}
	topic := testGW.Topic(protocol.KindTelemetry)
	complete := func() bool {
		got := decodeTelemetry(t, cloud.Messages(topic)).metrics()
		for dev, tmpl := range want {
			n := len(ts[tmpl].Points)
			if ts[tmpl].MQTT != nil {
				n = len(ts[tmpl].MQTT.Fields)
			}
			if len(got[dev]) < n {
				return false
			}
		}
		return true
	}
	waitFor(t, 30*time.Second, "every metric of every device at the cloud broker", complete)

	st, ok := cloud.Retained(testGW.Topic(protocol.KindStatus))
	if !ok {
		t.Fatal("no retained gateway status")
	}
	if s, err := protocol.DecodeStatus(st.Payload); err != nil || s.State != protocol.StateOnline || s.Agent != Version {
		t.Fatalf("status %+v, %v", s, err)
	}
	waitFor(t, 10*time.Second, "gateway_start event", func() bool { return hasEvent(events(t, cloud), protocol.EventGatewayStart, "") })

	resp, err := http.Get("http://" + a.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.Status != "ok" || !h.Uplink.Connected || h.Devices.Modbus != 4 || h.Devices.MQTT != 2 || h.Gateway != testGW.Gateway {
		t.Fatalf("healthz %+v, %v", h, err)
	}
	m := scrape(t, a.HTTPAddr())
	for name, check := range map[string]func(float64) bool{
		`plantroom_edge_uplink_connected`:                                          func(v float64) bool { return v == 1 },
		`plantroom_edge_modbus_requests_per_poll{device="meter-1"}`:                func(v float64) bool { return v == 2 },
		`plantroom_edge_modbus_device_online{device="pump-1"}`:                     func(v float64) bool { return v == 1 },
		`plantroom_edge_modbus_points_read_total{device="elevator-1"}`:             func(v float64) bool { return v > 0 },
		`plantroom_edge_readings_taken_total`:                                      func(v float64) bool { return v > 0 },
		`plantroom_edge_queue_committed_readings_total`:                            func(v float64) bool { return v > 0 },
		`plantroom_edge_queue_max_bytes`:                                           func(v float64) bool { return v == 256<<20 },
		`plantroom_edge_queue_bound_bytes`:                                         func(v float64) bool { return v > 0 && v <= 256<<20 },
		`plantroom_edge_queue_disk_free_bytes`:                                     func(v float64) bool { return v > 0 },
		`plantroom_edge_uplink_readings_published_total{lane="live"}`:              func(v float64) bool { return v > 0 },
		`plantroom_edge_queue_dropped_readings_total`:                              func(v float64) bool { return v == 0 },
		`plantroom_edge_mqtt_messages_total{device="plug-1"}`:                      func(v float64) bool { return v > 0 },
		`plantroom_edge_agent_info{gateway="gw-test-1",version="` + Version + `"}`: func(v float64) bool { return v == 1 },
		buildInfoSeries(): func(v float64) bool { return v == 1 },
	} {
		if v, ok := m[name]; !ok || !check(v) {
			t.Errorf("metric %s = %v (present %v)", name, v, ok)
		}
	}

	// Reload: pump-2 replaces pump-1; the queue and its seq carry on.
	before := a.queue.Stats().CommittedReadings
	reloaded := strings.Replace(text, deviceLine(modbusSim, "pump-1", "pump-vfd", "200ms"), deviceLine(modbusSim, "pump-2", "pump-vfd", "200ms"), 1)
	if reloaded == text {
		t.Fatal("test bug: reload text unchanged")
	}
	if err := a.Reload(loadConfig(t, reloaded)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "pump-2 readings", func() bool {
		return len(decodeTelemetry(t, cloud.Messages(topic)).metrics()["pump-2"]) == len(ts["pump-vfd"].Points)
	})
	if _, still := a.poller.Stats()["pump-1"]; still {
		t.Fatal("pump-1 still polled after the reload")
	}
	if a.queue.Stats().CommittedReadings < before {
		t.Fatal("queue counters went back: the queue was reopened")
	}
	bad := strings.Replace(reloaded, "template: pump-vfd", "template: no-such-template", 1)
	if cfg, err := Load(writeConfig(t, dir, bad)); err == nil {
		if err := a.Reload(cfg); err == nil {
			t.Fatal("a reload with an unknown template was accepted")
		}
	}
	if _, ok := a.poller.Stats()["pump-2"]; !ok {
		t.Fatal("a refused reload changed the devices")
	}
	final := decodeTelemetry(t, cloud.Messages(topic))
	final.seqsContiguous(t)
	final.noReadingInTwoSeqs(t)
}

// A dead device next to live ones: the live devices keep the poll rate of a
// control device polled by an agent of its own, the dead one is backed off,
// reported offline and, once it answers again, online.
func TestDeadDeviceNextToLiveOnes(t *testing.T) {
	cloud, _ := startCloud(t)
	b := startSim(t, sim.MQTTConfig{},
		sim.DeviceConfig{ID: "pump-1", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "pump-2", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "pump-dead", Template: "pump-vfd"},
		sim.DeviceConfig{ID: "pump-ctl", Template: "pump-vfd"},
	)
	devices := "modbus: {offline_after: 2, max_backoff: 2s}\ndevices:\n" +
		deviceLine(b, "pump-1", "pump-vfd", "100ms") + deviceLine(b, "pump-2", "pump-vfd", "100ms") +
		deviceLine(b, "pump-dead", "pump-vfd", "100ms")
	if err := b.SetFault("pump-dead", sim.Fault{Delay: 2 * time.Second}); err != nil { // answers after the 500ms timeout
		t.Fatal(err)
	}
	a := startAgent(t, agentYAML(cloud.URL(), t.TempDir(), devices))
	waitFor(t, 20*time.Second, "device_offline at the cloud", func() bool {
		return hasEvent(events(t, cloud), protocol.EventDeviceOffline, "pump-dead")
	})
	// The control: the same model at the same interval, in an agent of
	// its own with no dead neighbour. Poll counts are compared over one
	// window, not against wall time.
	control := startAgent(t, agentYAML(mqtttest.StartMochi(t, cloudUsers()).URL(), t.TempDir(),
		"devices:\n"+deviceLine(b, "pump-ctl", "pump-vfd", "100ms")))
	waitFor(t, 10*time.Second, "the control device polled", func() bool { return control.poller.Stats()["pump-ctl"].Polls > 0 })
	start, ctl0 := a.poller.Stats(), control.poller.Stats()["pump-ctl"].Polls
	waitFor(t, 20*time.Second, "20 polls of the control device", func() bool {
		return control.poller.Stats()["pump-ctl"].Polls >= ctl0+20
	})
	end, ctl := a.poller.Stats(), float64(control.poller.Stats()["pump-ctl"].Polls-ctl0)
	for _, id := range []string{"pump-1", "pump-2"} {
		polls := float64(end[id].Polls - start[id].Polls)
		if polls < 0.6*ctl {
			t.Errorf("%s polled %v times next to a dead device while the control device polled %v times", id, polls, ctl)
		}
		if end[id].FailedPolls != 0 {
			t.Errorf("%s had %d failed polls", id, end[id].FailedPolls)
		}
	}
	if dead := float64(end["pump-dead"].Polls - start["pump-dead"].Polls); dead >= 0.5*ctl {
		t.Errorf("the dead device was polled %v times while the control device polled %v times: not backed off", dead, ctl)
	}
	if h := a.Health(); h.Status != "degraded" || len(h.Devices.Offline) != 1 || h.Devices.Offline[0] != "pump-dead" {
		t.Errorf("healthz %+v", h)
	}
	if err := b.ClearFault("pump-dead"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "device_online at the cloud", func() bool {
		return hasEvent(events(t, cloud), protocol.EventDeviceOnline, "pump-dead")
	})
	waitFor(t, 10*time.Second, "pump-dead readings", func() bool {
		return len(decodeTelemetry(t, cloud.Messages(testGW.Topic(protocol.KindTelemetry))).metrics()["pump-dead"]) > 0
	})
}

// The cloud broker is down for a while and comes back: everything the
// queue committed arrives, each series in order within its lane.
func TestBrokerOutageWithSimulators(t *testing.T) {
	cloud, _ := startCloud(t)
	b := startSim(t, sim.MQTTConfig{},
		sim.DeviceConfig{ID: "meter-1", Template: "sdm630"},
		sim.DeviceConfig{ID: "elevator-1", Template: "elevator"},
	)
	devices := "report: {heartbeat: 1s}\ndevices:\n" + deviceLine(b, "meter-1", "sdm630", "100ms") + deviceLine(b, "elevator-1", "elevator", "100ms")
	a := startAgent(t, agentYAML(cloud.URL(), t.TempDir(), devices))
	topic := testGW.Topic(protocol.KindTelemetry)
	waitFor(t, 20*time.Second, "first telemetry", func() bool { return len(cloud.Messages(topic)) > 3 })
	cloud.Stop()
	waitFor(t, 10*time.Second, "uplink down", func() bool { return !a.uplink.Connected() })
	atStop := a.queue.Stats().CommittedReadings
	waitFor(t, 30*time.Second, "readings during the outage", func() bool { return a.queue.Stats().CommittedReadings > atStop+500 })
	if st := a.queue.Stats(); st.Items == 0 || st.DroppedReadings != 0 {
		t.Fatalf("queue during the outage: %+v", st)
	}
	cloud.Restart()
	waitFor(t, 20*time.Second, "reconnect", a.uplink.Connected)
	a.poller.Stop() // no more readings: everything committed must now arrive
	if err := a.queue.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	committed := a.queue.Stats().CommittedReadings
	waitFor(t, 30*time.Second, "queue drained", func() bool { st := a.queue.Stats(); return st.Items == 0 && st.InFlightBatches == 0 })
	tm := decodeTelemetry(t, cloud.Messages(topic))
	if got := int64(len(tm.distinct())); got != committed {
		t.Fatalf("the queue committed %d readings, the broker got %d distinct ones", committed, got)
	}
	tm.lanesOrdered(t)
	tm.seqsContiguous(t)
	tm.noReadingInTwoSeqs(t)
}

// A start that fails half way (the HTTP port is taken) stops what it
// started: the queue file is closed again and a second agent can use it.
func TestFailedStartCleansUp(t *testing.T) {
	cloud, _ := startCloud(t)
	dir := t.TempDir()
	first := startAgent(t, agentYAML(cloud.URL(), t.TempDir(), "devices: []\n"))
	text := agentYAML(cloud.URL(), dir, "devices: []\n")
	text = replaceOnce(t, text, `http: {listen: "127.0.0.1:0"}`, "http: {listen: "+first.HTTPAddr()+"}")
	a, err := New(loadConfig(t, text), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "cannot listen") {
		t.Fatalf("start with a taken port: %v", err)
	}
	a.Stop()
	startAgent(t, agentYAML(cloud.URL(), dir, "devices: []\n")) // same queue file
}

// buildInfoSeries is the agent's plantroom_build_info series as /metrics
// writes it.
func buildInfoSeries() string {
	in := buildinfo.Get()
	return fmt.Sprintf(`plantroom_build_info{commit=%q,date=%q,goversion=%q,platform=%q,program="edge-agent",version=%q}`,
		in.Commit, in.Date, in.GoVersion, in.Platform, in.Version)
}
