package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/logtest"
	"github.com/plantroom/plantroom/protocol"
)

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig is the demo configuration with loopback ephemeral ports and a
// fresh database.
func testConfig(t *testing.T, components string) *Config {
	t.Helper()
	_, db := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	abs, err := filepath.Abs("../../configs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	yaml := fmt.Sprintf(`org: %[1]s/org.yaml
tariffs: %[1]s/tariffs.yaml
templates: %[1]s/templates
rules: %[1]s/rules.yaml
components: %[2]s
metrics: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
ingest: {flush_interval: 50ms}
clickhouse: {addr: %[3]q, user: %[4]q, password: %[5]q, database: %[6]s}
`, abs, components, ch.Addr, ch.User, ch.Password, db)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvClickHouseAddr, "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runApp runs a in the background and stops it at cleanup.
func runApp(t *testing.T, a *App) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// The whole cloud in one process, as configs/cloud.yaml runs it: a demo
// gateway logs in to the embedded broker, its readings reach ClickHouse
// through the in-process ingest, and the metrics endpoint shows them.
func TestOneProcess(t *testing.T) {
	cfg := testConfig(t, "[broker, ingest]")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := New(ctx, cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runApp(t, a)
	waitFor(t, 20*time.Second, "the ingest to subscribe", func() bool {
		select {
		case <-a.Ingest.Ready():
			return true
		default:
			return false
		}
	})

	gw := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + a.Broker.Addr()).SetClientID("gw-garden-1").
		SetUsername("gw-garden-1").SetPassword("demo-gw-garden-1-secret").SetProtocolVersion(4).SetAutoReconnect(false))
	// Disconnect also when the login fails, so the broker's shutdown does
	// not wait for a half-open connection.
	defer gw.Disconnect(50)
	if tok := gw.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("demo gateway login: %v", tok.Error())
	}
	now := time.Now().Truncate(time.Second)
	b := &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: 1, SentAt: now.UnixMilli(), Readings: []protocol.Reading{
		{Device: "garden-meter-main", Metric: "energy_import_kwh", TS: now.Add(-time.Second).UnixMilli(), Value: 1234.5},
		{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: now.UnixMilli(), Value: 3.1},
	}}
	p, err := protocol.AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	ref := protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	if tok := gw.Publish(ref.Topic(protocol.KindTelemetry), 1, false, p); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitFor(t, 20*time.Second, "the readings in the latest values", func() bool {
		return a.Latest.Get("garden-pump-1")["outlet_pressure_bar"].Value == 3.1
	})
	var n uint64
	if err := a.DB.Conn().QueryRow(ctx, "SELECT count() FROM readings FINAL").Scan(&n); err != nil || n != 2 {
		t.Errorf("stored %d readings (%v), want 2", n, err)
	}

	var metricsAddr string
	for _, c := range a.components {
		if m, ok := c.c.(*metricsServer); ok {
			metricsAddr = m.addr
		}
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"plantroom_ingest_readings_total 2", `plantroom_ingest_messages_total{kind="telemetry"} 1`, "plantroom_broker_denied_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// An API-only process has no ingest: it reads the latest values from
// ClickHouse at start.
func TestAPIOnlyProcessLoadsLatestValues(t *testing.T) {
	cfg := testConfig(t, "[broker, ingest]")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := New(ctx, cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// Write a reading through the first process's store directly.
	now := time.Now().Truncate(time.Millisecond)
	rb := &storeBatch{}
	rb.Add("acme", "tower", "gw-tower-1", 1, &protocol.Reading{Device: "tower-pump-1", Metric: "running", TS: now.UnixMilli(), Value: 1})
	if err := first.DB.InsertReadings(ctx, &rb.ReadingBatch); err != nil {
		t.Fatal(err)
	}
	first.DB.Close()

	cfg.Components = []string{ComponentAPI}
	a, err := New(ctx, cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ingest != nil || a.Broker != nil {
		t.Fatalf("api-only process built an ingest or broker")
	}
	runApp(t, a)
	waitFor(t, 10*time.Second, "the latest value and presence from ClickHouse", func() bool {
		v, ok := a.Latest.Get("tower-pump-1")["running"]
		d, _ := a.Presence.Device("tower-pump-1")
		return ok && v.TS.Equal(now) && d.LastTS.Equal(now)
	})
}

// A broker without a store says at start what a crash would cost: nothing
// but re-sends for version-2 gateways, so it is no warning; with a store it
// says nothing of the kind.
func TestWarnsWithoutBrokerStore(t *testing.T) {
	for _, store := range []string{"", filepath.Join(t.TempDir(), "state", "broker.db")} {
		cfg := testConfig(t, "[broker]")
		cfg.Broker.StorePath = store
		var buf logtest.Buffer
		a, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		runApp(t, a)
		if said := strings.Contains(buf.String(), "broker.store_path is empty"); said != (store == "") {
			t.Errorf("store_path %q: said %v\n%s", store, said, buf.String())
		}
		if strings.Contains(buf.String(), "level=WARN msg=\"broker.store_path") {
			t.Errorf("store_path %q: a warning, though version-2 gateways lose nothing\n%s", store, buf.String())
		}
	}
}
