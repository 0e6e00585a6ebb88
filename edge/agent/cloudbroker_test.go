package agent

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

// The demo gateway's own configuration (configs/edge-gw-garden-1.yaml:
// identity, password, uplink settings) against the cloud's embedded broker
// with the demo organisation: the broker lets it in under its prefix, and a
// cloud service subscribed to the telemetry receives its batches and status.
func TestDemoGatewayAgainstCloudBroker(t *testing.T) {
	var org config.Org
	if err := config.LoadFile("../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: &org, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ingestPassword, err := b.AddInternalService("ingest")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)

	var mu sync.Mutex
	got := map[string][][]byte{}
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).
		SetClientID(fmt.Sprintf("ingest-test-%d", time.Now().UnixNano())).SetUsername("ingest").SetPassword(ingestPassword).
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("service cannot connect: %v", tok.Error())
	}
	t.Cleanup(func() { sub.Disconnect(100) })
	tok := sub.Subscribe("plantroom/v2/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[m.Topic()] = append(got[m.Topic()], append([]byte(nil), m.Payload()...))
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe: %v", tok.Error())
	}

	demo, err := os.ReadFile("../../configs/edge-gw-garden-1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startSim(t, sim.MQTTConfig{}, sim.DeviceConfig{ID: "garden-meter-main", Template: "sdm630"})
	dir := t.TempDir()
	text := string(demo)
	text = text[:strings.Index(text, "devices:")] + "devices:\n" + deviceLine(s, "garden-meter-main", "sdm630", "200ms")
	text = replaceOnce(t, text, "tcp://127.0.0.1:1883", "tcp://"+b.Addr())
	text = replaceOnce(t, text, "configs/templates", templatesDir)
	text = replaceOnce(t, text, ".data/edge/gw-garden-1/queue.db", dir+"/queue.db")
	text = replaceOnce(t, text, "127.0.0.1:9102", "127.0.0.1:0")
	text = replaceOnce(t, text, "listen: 127.0.0.1:1884", "listen: 127.0.0.1:0")
	a := startAgent(t, text)

	ref := protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	waitFor(t, 20*time.Second, "telemetry at the cloud service", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[ref.Topic(protocol.KindTelemetry)]) >= 2 && len(got[ref.Topic(protocol.KindStatus)]) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, p := range got[ref.Topic(protocol.KindTelemetry)] {
		var bt protocol.Batch
		if err := protocol.DecodeBatch(p, &bt); err != nil || bt.Gateway != "gw-garden-1" || bt.Readings[0].Device != "garden-meter-main" {
			t.Fatalf("batch %+v, %v", bt, err)
		}
	}
	st, err := protocol.DecodeStatus(got[ref.Topic(protocol.KindStatus)][0])
	if err != nil || st.State != protocol.StateOnline {
		t.Fatalf("status %+v, %v", st, err)
	}
	if !a.uplink.Connected() {
		t.Fatal("uplink not connected")
	}
}
