package workorderhttp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// cloud is the cloud side as cmd/cloud wires it: embedded broker, ingest,
// alarm engine, work-order desk and API, on a fresh ClickHouse database.
type cloud struct {
	t       testing.TB
	b       *config.Bundle
	broker  *broker.Broker
	ingest  *ingest.Ingest
	engine  *alarm.Engine
	desk    *workorder.Desk
	api     *httptest.Server
	latency *latencyProbe
	hook    *hookReceiver // the garden project's webhook
}

// hookReceiver is a webhook endpoint on loopback recording what it gets.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []notify.Message
	bad  []string // deliveries whose signature did not verify
}

func newHookReceiver(t testing.TB, secret string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.Message
		err := json.Unmarshal(body, &m)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil || r.Header.Get(notify.HeaderSignature) != notify.Sign(secret, body) {
			h.bad = append(h.bad, string(body))
		} else {
			h.msgs = append(h.msgs, m)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// events lists the event names received for a project.
func (h *hookReceiver) events(project string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		if m.Project == project {
			out = append(out, m.Event)
		}
	}
	return out
}

// latencyProbe sits between ingest and the alarm engine. Ingest calls its
// observers after the batch's rows are committed, and the engine returns
// once the resulting alarm events and work orders are stored, so when a
// batch leaves the desk with more orders than before, the time since the
// batch's arrival at ingest is the arrival → work-order latency.
type latencyProbe struct {
	*alarm.Engine
	desk      *workorder.Desk
	mu        sync.Mutex
	latencies []time.Duration
	last      uint64 // latest gw-garden-1 batch passed on
}

func (p *latencyProbe) ObserveBatch(ctx context.Context, gw config.GatewayInfo, b *protocol.Batch, arrived time.Time) {
	hq := alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}
	before := len(mustOrders(p.desk.List(context.Background(), hq, workorder.Filter{Limit: 1 << 30})))
	p.Engine.ObserveBatch(ctx, gw, b, arrived)
	after := len(mustOrders(p.desk.List(context.Background(), hq, workorder.Filter{Limit: 1 << 30})))
	d := time.Since(arrived)
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.Gateway == "gw-garden-1" {
		p.last = max(p.last, b.Seq)
	}
	if after > before {
		p.latencies = append(p.latencies, d)
	}
}

// samples returns the latencies recorded so far.
func (p *latencyProbe) samples() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.latencies...)
}

// processed reports whether the engine has seen gw-garden-1's batch seq.
func (p *latencyProbe) processed(seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last >= seq
}

func startCloud(t testing.TB) *cloud {
	t.Helper()
	b := loadBundle(t)
	db := openDB(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &cloud{t: t, b: b, hook: newHookReceiver(t, "garden-hook-secret")}
	_, garden, _ := b.Org.FindProject("garden")
	garden.Webhooks = []config.Webhook{{URL: c.hook.srv.URL + "/plantroom", Secret: "garden-hook-secret"}}
	notifier, err := notify.New(notify.Config{Org: &b.Org, Logger: logger, InitialBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := notifier.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(notifier.Stop)
	br, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: &b.Org, Logger: logger})
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
	c.broker = br

	feed := alarm.NewFeed(0, nil)
	c.desk, err = workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed, Notifier: notifier, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.desk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.desk.Stop)
	alog := alarm.NewClickHouseLog(db.Conn())
	c.engine, err = alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alog, Feed: feed, Sinks: []alarm.Sink{c.desk},
		Notifier: notifier, Logger: logger, TickInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.engine.Stop)
	c.latency = &latencyProbe{Engine: c.engine, desk: c.desk}

	c.ingest, err = ingest.New(ingest.Config{Org: &b.Org, Store: db, Logger: logger, Registerer: prometheus.NewRegistry(),
		FlushInterval: 20 * time.Millisecond, Observers: []ingest.Observer{c.latency},
		MQTT: ingest.MQTTConfig{URL: "tcp://" + br.Addr(), Username: "plantroom-ingest", Password: pw, ClientID: "plantroom-ingest-e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ingest.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.ingest.Stop)
	select {
	case <-c.ingest.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("ingest not subscribed")
	}

	srv, err := api.New(api.Config{Listen: "127.0.0.1:0"}, api.Deps{Bundle: b, DB: db, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(alarmhttp.Routes(c.engine)...)
	srv.Register(Routes(c.desk, c.engine, photo.New(photo.Dir(t.TempDir()), 0))...)
	c.api = httptest.NewServer(srv.Handler())
	t.Cleanup(c.api.Close)
	return c
}

// call makes an API request as staff and decodes a 200 answer into out.
func (c *cloud) call(staff, method, path string, body any, out any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.api.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+tokens[staff])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s %s as %s: %d %s", method, path, staff, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatal(err)
		}
	}
}

// TestEndToEndPumpPressureLoss: a simulated pump loses pressure → Modbus
// poll → MQTT → ingest → ClickHouse → alarm → work order assigned to the
// garden's on-duty technician → on that technician's stream and on no
// tower stream → accepted, started, resolved → the alarm clears when the
// pressure recovers.
func TestEndToEndPumpPressureLoss(t *testing.T) {
	c := startCloud(t)
	room := newPlantRoom(t, c)

	techStream, closeTech := openStream(t, c.api.URL, "tech-garden-1", "")
	defer closeTech()
	nightStream, closeNight := openStream(t, c.api.URL, "tech-garden-2", "")
	defer closeNight()
	towerTech, closeTT := openStream(t, c.api.URL, "tech-tower-1", "")
	defer closeTT()
	towerPM, closeTP := openStream(t, c.api.URL, "pm-tower", "")
	defer closeTP()

	hq := alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}
	lowAlarm := func() *alarm.Alarm {
		for _, a := range mustAlarms(c.engine.Alarms(context.Background(), hq, alarm.Filter{Device: "garden-pump-1"})) {
			if a.Rule == "pump-pressure-low" {
				return &a
			}
		}
		return nil
	}
	// A minute of normal operation: no alarm.
	for i := 0; i < 6; i++ {
		if p := room.poll(10 * time.Second); p < 2.5 {
			t.Fatalf("normal pressure %.2f bar", p)
		}
	}
	// The pipe bursts. Poll every 5 s of device time until the order exists.
	if err := room.building.Event("garden-pump-1", "pressure_loss"); err != nil {
		t.Fatal(err)
	}
	var orders []workorder.WorkOrder
	for i := 0; len(orders) == 0; i++ {
		if i == 30 {
			t.Fatalf("no work order after 150 s of device time; alarms %+v", mustAlarms(c.engine.Alarms(context.Background(), hq, alarm.Filter{})))
		}
		room.poll(5 * time.Second)
		waitFor(t, "ingest to pass the batch on", func() bool { return c.latency.processed(room.seq) })
		orders = mustOrders(c.desk.List(context.Background(), hq, workorder.Filter{Device: "garden-pump-1"}))
	}
	a := lowAlarm()
	if a == nil || a.State != alarm.StateActive || a.Value >= 2.2 {
		t.Fatalf("pressure alarm %+v", a)
	}
	w := orders[0]
	onDuty := "tech-garden-2" // garden shifts: 08:00–20:00 tech-garden-1, else tech-garden-2
	if h := w.AssignedAt.In(shanghai).Hour(); h >= 8 && h < 20 {
		onDuty = "tech-garden-1"
	}
	if w.Rule != "pump-pressure-low" || w.State != workorder.StateAssigned || w.Assignee != onDuty || w.Priority != 2 || w.AlarmID != a.ID {
		t.Fatalf("work order %+v, want P2 assigned to %s", w, onDuty)
	}
	t.Logf("reading arrival at ingest → work order stored and assigned: %s", c.latency.samples()[0])

	// On the on-duty technician's stream: the alarm, then the assignment.
	stream := techStream
	if onDuty == "tech-garden-2" {
		stream = nightStream
	}
	sawAlarm := false
	for {
		ev := next(t, stream)
		if ev.event == "alarm" && strings.Contains(ev.data, `"id":"`+a.ID+`"`) {
			sawAlarm = true
		}
		if ev.event == "workorder" && strings.Contains(ev.data, `"order_id":"`+w.ID+`"`) {
			if !sawAlarm || !strings.Contains(ev.data, `"action":"assign"`) {
				t.Fatalf("work-order event before the alarm, or not the assignment: %s", ev.data)
			}
			break
		}
	}
	// Nothing of the garden reaches tower staff. A tower elevator fault,
	// published after, marks the point by which anything would have shown.
	twr, _ := c.b.Org.FindGateway("gw-tower-1")
	ts := room.building.Now().UnixMilli()
	towerCl := connectGateway(t, c, "gw-tower-1", "demo-gw-tower-1-secret")
	payload, _ := protocol.AppendBatch(nil, &protocol.Batch{Epoch: 1, Gateway: "gw-tower-1", Seq: 1, SentAt: ts,
		Readings: []protocol.Reading{{Device: "tower-elevator-1", Metric: "trapped", TS: ts, Value: 1}}})
	if tok := towerCl.Publish(twr.Ref().Topic(protocol.KindTelemetry), 1, false, payload); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for name, s := range map[string]<-chan sseEvent{"tech-tower-1": towerTech, "pm-tower": towerPM} {
		for {
			ev := next(t, s)
			if strings.Contains(ev.data, `"garden`) || strings.Contains(ev.data, `"project":"garden"`) {
				t.Fatalf("%s got a garden event: %s", name, ev.data)
			}
			if strings.Contains(ev.data, `"device":"tower-elevator-1"`) {
				break
			}
		}
	}

	// The technician acknowledges the alarm with a note, then takes the
	// order: accepted, on site, resolved.
	var acked alarm.Alarm
	c.call(onDuty, "POST", "/api/v1/alarms/"+a.ID+"/ack", map[string]string{"note": "管道爆裂，已关阀 / burst pipe, valve closed"}, &acked)
	for _, s := range []string{workorder.StateAccepted, workorder.StateInProgress, workorder.StateResolved} {
		var got workorder.WorkOrder
		c.call(onDuty, "POST", "/api/v1/workorders/"+w.ID+"/transitions", workorder.TransitionRequest{To: s, Note: "现场处理: " + s}, &got)
		if got.State != s {
			t.Fatalf("state %s, want %s", got.State, s)
		}
	}
	// The pipe is repaired: pressure comes back and, after the minute's
	// hold, the alarm clears.
	if err := room.building.Event("garden-pump-1", "clear"); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i == 60 {
			t.Fatalf("alarm not cleared after 5 minutes of device time: %+v", lowAlarm())
		}
		room.poll(5 * time.Second)
		waitFor(t, "ingest to pass the batch on", func() bool { return c.latency.processed(room.seq) })
		if lowAlarm().State == alarm.StateCleared {
			break
		}
	}
	var got alarm.Alarm
	c.call(onDuty, "GET", "/api/v1/alarms/"+a.ID, nil, &got)
	if got.State != alarm.StateCleared || got.ClearedAt.Before(got.RaisedAt.Add(time.Minute)) {
		t.Errorf("alarm after recovery %+v", got)
	}
	// One pressure alarm over the whole episode (other rules, such as the
	// motor warming while the drive runs flat out, may have their own).
	var lows []string
	for _, x := range mustAlarms(c.engine.Alarms(context.Background(), hq, alarm.Filter{Device: "garden-pump-1"})) {
		if x.Rule == "pump-pressure-low" {
			lows = append(lows, x.ID+" "+x.State)
		}
	}
	if len(lows) != 1 {
		t.Errorf("pressure alarms %v, want one", lows)
	}
	// The garden's webhook heard of it all, signed (two senders: in any order).
	waitFor(t, "webhook deliveries", func() bool {
		got := c.hook.events("garden")
		for _, want := range []string{"alarm.raise", "workorder.assigned", "workorder.resolved", "alarm.clear"} {
			if !slices.Contains(got, want) {
				return false
			}
		}
		return true
	})
	c.hook.mu.Lock()
	if len(c.hook.bad) > 0 {
		t.Errorf("deliveries with a bad signature: %q", c.hook.bad)
	}
	c.hook.mu.Unlock()
	var hist History
	c.call("pm-garden", "GET", "/api/v1/devices/garden-pump-1/history", nil, &hist)
	if len(hist.WorkOrders) != 1 || hist.WorkOrders[0].State != workorder.StateResolved {
		t.Errorf("device history %+v", hist.WorkOrders)
	}
	// Issue 19, point 5: the record keeps every step of the alarm too:
	// raise, the acknowledgement with who and its note, the clear.
	var steps []string
	for _, rec := range hist.Alarms {
		if rec.ID != a.ID {
			continue
		}
		for _, st := range rec.Steps {
			step := st.Kind
			if st.Kind == alarm.EventAck {
				step += " " + st.Who + " " + st.Note
			}
			steps = append(steps, step)
		}
	}
	want := "raise|ack " + onDuty + " 管道爆裂，已关阀 / burst pipe, valve closed|clear"
	if got := strings.Join(slices.DeleteFunc(steps, func(s string) bool { return s == alarm.EventRepeat }), "|"); got != want {
		t.Errorf("alarm steps in the device history %q, want %q (repeats aside)", got, want)
	}
}

// waitFor polls cond until it holds, failing after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
