package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/protocol"
)

// bin/cloud with every component, on the demo configuration: a demo
// gateway publishes, and a project manager sees the value through the API.
func TestWholeCloud(t *testing.T) {
	bin := buildCloud(t)
	_, dbName := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	root, err := filepath.Abs("../../../configs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	yaml := fmt.Sprintf(`org: %[1]s/org.yaml
tariffs: %[1]s/tariffs.yaml
templates: %[1]s/templates
rules: %[1]s/rules.yaml
metrics: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
ingest: {flush_interval: 50ms}
api: {listen: "127.0.0.1:0"}
clickhouse: {addr: %[2]q, user: %[3]q, password: %[4]q, database: %[5]s}
`, root, ch.Addr, ch.User, ch.Password, dbName)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, bin, "-config", path)
	c.waitReady(t)
	var brokerAddr, apiAddr string
	waitFor(t, 20*time.Second, "the broker and API addresses in the log", func() bool {
		brokerAddr, apiAddr = c.logged("MQTT broker listening", "tcp"), c.logged("API listening", "addr")
		return brokerAddr != "" && apiAddr != ""
	})

	gw := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("gw-garden-1").
		SetUsername("gw-garden-1").SetPassword("demo-gw-garden-1-secret").SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := gw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	defer gw.Disconnect(50)
	now := time.Now().Truncate(time.Second)
	p, err := protocol.AppendBatch(nil, &protocol.Batch{Epoch: 1, Gateway: "gw-garden-1", Seq: 1, SentAt: now.UnixMilli(),
		Readings: []protocol.Reading{{Device: "garden-pump-1", Metric: "outlet_pressure_bar", TS: now.UnixMilli(), Value: 3.25}}})
	if err != nil {
		t.Fatal(err)
	}
	if tok := gw.Publish(gardenRef.Topic(protocol.KindTelemetry), 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	get := func(path, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	waitFor(t, 20*time.Second, "the reading in the API", func() bool {
		code, body := get("/api/v1/devices/garden-pump-1", "demo-pm-garden")
		return code == http.StatusOK && fmt.Sprint(body) != "" && containsValue(body, 3.25)
	})
	if code, _ := get("/api/v1/devices/garden-pump-1", "demo-pm-tower"); code != http.StatusNotFound {
		t.Errorf("the tower manager got %d for a garden device, want 404", code)
	}
}

// containsValue reports whether v occurs anywhere in a decoded JSON tree.
func containsValue(tree any, v float64) bool {
	switch x := tree.(type) {
	case float64:
		return x == v
	case map[string]any:
		for _, e := range x {
			if containsValue(e, v) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if containsValue(e, v) {
				return true
			}
		}
	}
	return false
}
