package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/internal/promtext"
	"github.com/plantroom/plantroom/protocol"
)

const templatesDir = "../../configs/templates"

var testGW = protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-test-1"}

const testSecret = "test-gateway-secret"

const ingestUser, ingestSecret = "ingest", "test-ingest-secret"

func cloudUsers() map[string]mqtttest.User {
	return map[string]mqtttest.User{
		testGW.Gateway: {Password: testSecret, Prefix: testGW.Prefix() + "/"},
		ingestUser:     {Password: ingestSecret},
	}
}

// startCloud starts the cloud broker for an agent test and a client that
// plays the ingest: it answers every batch with a commit acknowledgement.
func startCloud(t testing.TB) (*mqtttest.Mochi, *mqtttest.Acker) {
	t.Helper()
	b := mqtttest.StartMochi(t, cloudUsers())
	return b, mqtttest.StartAcker(t, b.URL(), ingestUser, ingestSecret)
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentYAML is an agent configuration for tests: the cloud broker, a queue
// in dir, HTTP on a free port, short intervals; devices and extra sections
// are appended by the caller.
func agentYAML(broker, dir string, extra string) string {
	return fmt.Sprintf(`gateway: {id: %s, company: %s, project: %s, password: %s}
templates: %s
uplink:
  broker: %s
  keepalive: 2s
  connect_timeout: 2s
  publish_timeout: 10s
  inflight: 4
  batch_max_readings: 500
  batch_max_delay: 50ms
  backlog_rate: 50000
  reconnect_min: 20ms
  reconnect_max: 300ms
  commit_timeout: 1s
queue: {path: %s, commit_interval: 5ms}
http: {listen: "127.0.0.1:0"}
%s`, testGW.Gateway, testGW.Company, testGW.Project, testSecret, templatesDir, broker, filepath.Join(dir, "queue.db"), extra)
}

func writeConfig(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("edge-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadConfig(t testing.TB, text string) *Config {
	t.Helper()
	cfg, err := Load(writeConfig(t, t.TempDir(), text))
	if err != nil {
		t.Fatalf("configuration: %v\n%s", err, text)
	}
	return cfg
}

func startAgent(t testing.TB, text string) *Agent {
	t.Helper()
	a, err := New(loadConfig(t, text), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// startSim runs a simulated building on loopback port 0 with a running
// clock and no random faults.
func startSim(t testing.TB, mqtt sim.MQTTConfig, devs ...sim.DeviceConfig) *sim.Building {
	t.Helper()
	none := sim.PerDay(0)
	for i := range devs {
		if devs[i].Listen == "" && devs[i].Topic == "" {
			devs[i].Listen = "127.0.0.1:0"
		}
		if devs[i].Template == "pump-vfd" || devs[i].Template == "elevator" {
			devs[i].FaultsPerDay = none
		}
	}
	ts, err := config.LoadTemplates(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &sim.Config{Building: "test", Seed: 7, Clock: sim.ClockConfig{Speed: 60}, MQTT: mqtt, Devices: devs}
	b, err := sim.New(cfg, ts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// deviceLine is a devices[] entry for a simulated Modbus device.
func deviceLine(b *sim.Building, id, template, poll string) string {
	return fmt.Sprintf("  - {id: %s, template: %s, address: \"tcp://%s\", unit_id: 1, poll_interval: %s, timeout: 500ms}\n", id, template, b.Addr(id), poll)
}

// telemetry decodes every telemetry batch the broker accepted.
type telemetry struct {
	batches  []protocol.Batch
	payloads map[uint64][]byte
}

func decodeTelemetry(t testing.TB, msgs []mqtttest.Message) telemetry {
	t.Helper()
	out := telemetry{payloads: map[uint64][]byte{}}
	for _, m := range msgs {
		var b protocol.Batch
		if err := protocol.DecodeBatch(m.Payload, &b); err != nil {
			t.Fatalf("telemetry does not decode: %v", err)
		}
		if prev, dup := out.payloads[b.Seq]; dup && string(prev) != string(m.Payload) {
			t.Fatalf("batch seq %d arrived twice with different contents", b.Seq)
		}
		out.payloads[b.Seq] = m.Payload
		b.Readings = append([]protocol.Reading(nil), b.Readings...)
		out.batches = append(out.batches, b)
	}
	return out
}

type readingKey struct {
	device, metric string
	ts             int64
}

// distinct counts the distinct (device, metric, ts) readings received.
func (tm telemetry) distinct() map[readingKey]float64 {
	out := map[readingKey]float64{}
	for _, b := range tm.batches {
		for _, r := range b.Readings {
			out[readingKey{r.Device, r.Metric, r.TS}] = r.Value
		}
	}
	return out
}

// noReadingInTwoSeqs asserts that no reading travelled in two different
// batches: a re-send keeps the seq, so a reading under two seqs means the
// queue handed it out twice.
func (tm telemetry) noReadingInTwoSeqs(t testing.TB) {
	t.Helper()
	seqOf := map[readingKey]uint64{}
	for _, b := range tm.batches {
		for _, r := range b.Readings {
			k := readingKey{r.Device, r.Metric, r.TS}
			if s, ok := seqOf[k]; ok && s != b.Seq {
				t.Fatalf("reading %s/%s at %d arrived in batches %d and %d", r.Device, r.Metric, r.TS, s, b.Seq)
			}
			seqOf[k] = b.Seq
		}
	}
}

// metrics returns the metric names each device sent.
func (tm telemetry) metrics() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, b := range tm.batches {
		for _, r := range b.Readings {
			if out[r.Device] == nil {
				out[r.Device] = map[string]bool{}
			}
			out[r.Device][r.Metric] = true
		}
	}
	return out
}

// seqsContiguous asserts that the distinct seqs are exactly 1…max.
func (tm telemetry) seqsContiguous(t testing.TB) uint64 {
	t.Helper()
	var seqs []uint64
	for s := range tm.payloads {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("batch seqs %v…: seq %d missing", seqs[:min(len(seqs), 10)], i+1)
		}
	}
	if len(seqs) == 0 {
		return 0
	}
	return seqs[len(seqs)-1]
}

// lanesOrdered asserts that each (device, metric) first arrives as at
// most three interleaved increasing timestamp sequences
// (mqtttest.ArrivalLanes): the live lane, the backlog, and the batches
// that were in flight or awaiting their commit acknowledgement when the
// path or the broker went away, which come again after reconnecting or
// after their commit timeout.
func (tm telemetry) lanesOrdered(t testing.TB) {
	t.Helper()
	ts := map[string][]int64{}
	for _, b := range tm.batches {
		for _, r := range b.Readings {
			k := r.Device + "/" + r.Metric
			ts[k] = append(ts[k], r.TS)
		}
	}
	for k, v := range ts {
		if n := mqtttest.ArrivalLanes(v); n > 3 {
			t.Fatalf("%s arrives as %d interleaved sequences; want at most 3 (live, backlog, re-sent)", k, n)
		}
	}
}

// events decodes the gateway events the broker accepted.
func events(t testing.TB, broker *mqtttest.Mochi) []protocol.Event {
	t.Helper()
	var out []protocol.Event
	for _, m := range broker.Messages(testGW.Topic(protocol.KindEvents)) {
		e, err := protocol.DecodeEvent(m.Payload)
		if err != nil {
			t.Fatalf("event does not decode: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func hasEvent(evs []protocol.Event, kind, device string) bool {
	for _, e := range evs {
		if e.Kind == kind && (device == "" || e.Device == device) {
			return true
		}
	}
	return false
}

// scrape reads the agent's /metrics into "name{labels}" → value (labels
// sorted, as the agent writes them).
func scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	m, err := scrapeMetrics(addr)
	if err != nil {
		t.Fatalf("cannot scrape metrics: %v", err)
	}
	return m
}

func scrapeMetrics(addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := promtext.Scrape(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return nil, err
	}
	return m.Series(), nil
}
