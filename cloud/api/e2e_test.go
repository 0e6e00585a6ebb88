package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/protocol"
)

// TestReportThroughIngest sends a gateway's readings through the embedded
// broker and the real ingest into ClickHouse, with batches delivered twice
// and readings repeated under a new batch number, and reads the day's
// energy and the device list from the API.
//
// p1-pump counts 1.00 kWh per 10 minutes (6 kWh/h), p1-elev 0.50 (3 kWh/h)
// with a new meter reading 0.20 at 2 July 12:05, from 1 July 23:05 to
// 3 July 00:55 local time. On 2 July (tariff v1: valley 10 h × 0.30, peak
// 8 h × 1.00, flat 6 h × 0.60 = 14.6 per kWh/h):
//
//	pump:     24 × 6 = 144 kWh, 6 × 14.6 = 87.60
//	elevator: 24 × 3 − 0.30 = 71.7 kWh. The step 11:55 → 12:05 is 0.20
//	          instead of 0.50, spread over the peak/flat boundary at 12:00:
//	          0.15 less in each. 3 × 14.6 − 0.15 × 1.00 − 0.15 × 0.60 = 43.56
//	total:    215.7 kWh, 131.16
func TestReportThroughIngest(t *testing.T) {
	b := testBundle(t)
	db := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	br, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: &b.Org, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := br.AddInternalService("plantroom-ingest")
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Stop)
	in, err := ingest.New(ingest.Config{
		Org: &b.Org, Store: db, FlushInterval: 50 * time.Millisecond, Logger: testLogger(t), Registerer: prometheus.NewRegistry(),
		MQTT: ingest.MQTTConfig{URL: "tcp://" + br.Addr(), Username: "plantroom-ingest", Password: pw, ClientID: "plantroom-ingest-api-e2e"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	select {
	case <-in.Ready():
	case <-ctx.Done():
		t.Fatal("ingest not subscribed")
	}
	s := newServer(t, b, db, func(d *api.Deps) { d.Latest, d.Presence = in.Latest(), in.Presence() })

	// p1-gw has the password hash of the demo's gw-garden-1.
	opts := paho.NewClientOptions().AddBroker("tcp://" + br.Addr()).SetClientID("p1-gw").
		SetUsername("p1-gw").SetPassword("demo-gw-garden-1-secret").SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	gw := paho.NewClient(opts)
	if tok := gw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	t.Cleanup(func() { gw.Disconnect(50) })
	topic := protocol.GatewayRef{Company: "acme", Project: "p1", Gateway: "p1-gw"}.Topic(protocol.KindTelemetry)
	send := func(seq uint64, rs []protocol.Reading) {
		t.Helper()
		payload, err := protocol.AppendBatch(nil, &protocol.Batch{Epoch: 1, Gateway: "p1-gw", Seq: seq, SentAt: rs[len(rs)-1].TS, Readings: rs})
		if err != nil {
			t.Fatal(err)
		}
		if tok := gw.Publish(topic, 1, false, payload); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish batch %d: %v", seq, tok.Error())
		}
	}

	sh, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 7, 1, 23, 5, 0, 0, sh)
	const n = 156           // to 3 July 00:55
	replaced := int(13 * 6) // 2 July 12:05 is 13 h after 1 July 23:05
	var all []protocol.Reading
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli()
		elev := 800 + 0.5*float64(i)
		if i >= replaced {
			elev = 0.2 + 0.5*float64(i-replaced)
		}
		all = append(all,
			protocol.Reading{Device: "p1-pump", Metric: "energy_kwh", TS: ts, Value: 5000 + float64(i)},
			protocol.Reading{Device: "p1-elev", Metric: "energy_kwh", TS: ts, Value: elev})
	}
	var batches [][]protocol.Reading
	for i := 0; i < len(all); i += 40 {
		batches = append(batches, all[i:min(i+40, len(all))])
	}
	for i, rs := range batches {
		send(uint64(i+1), rs)
	}
	send(2, batches[1]) // redelivered batches
	send(5, batches[4])
	send(uint64(len(batches)+1), batches[2][:10]) // readings sent again in a new batch

	// Wait for the ingest to commit every reading (and update its cache).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, ok := in.Latest().Get("p1-elev")["energy_kwh"]; ok && v.TS.UnixMilli() == all[len(all)-1].TS {
			var stored uint64
			if err := db.Conn().QueryRow(ctx, "SELECT count() FROM (SELECT 1 FROM readings GROUP BY device, metric, ts_ms)").Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored == uint64(len(all)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the ingest did not commit every reading within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var day energy.Daily
	decode(t, call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2026-07-02&to=2026-07-02"), &day)
	if len(day.Days) != 1 || day.KWh != 215.7 || day.Cost == nil || *day.Cost != 131.16 ||
		day.Days[0].ByPeriod["peak"] != 8*9-0.15 || day.Days[0].ByPeriod["flat"] != 6*9-0.15 ||
		day.Days[0].ByCategory["pump"] != 144 || day.Days[0].ByCategory["elevator"] != 71.7 {
		t.Errorf("2 July = %+v, total %v kWh", day.Days, day.KWh)
	}
	var dev deviceJSON
	decode(t, call(t, s.Handler(), "acme-tech1", http.MethodGet, "/api/v1/devices/p1-pump"), &dev)
	if v := dev.Values["energy_kwh"]; v.Value != 5000+n-1 || v.Unit != "kWh" {
		t.Errorf("pump's newest counter = %+v, want %d", v, 5000+n-1)
	}
}
