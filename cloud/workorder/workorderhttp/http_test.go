package workorderhttp

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/workorder"
)

func TestWorkOrderFlowOverHTTP(t *testing.T) {
	r := newAPIRig(t)
	r.raiseDemoAlarms()
	var list struct {
		Alarms []alarm.Alarm `json:"alarms"`
	}
	r.decode(r.call("pm-garden", "GET", "/api/v1/alarms?project=garden&state=active&severity=major", nil), 200, &list)
	if len(list.Alarms) != 1 || list.Alarms[0].Device != "garden-pump-1" {
		t.Fatalf("garden alarms %+v", list.Alarms)
	}
	rec0 := r.call("pm-garden", "GET", "/api/v1/alarms?severity=critical", nil)
	r.decode(rec0, 200, &list)
	if len(list.Alarms) != 0 {
		t.Errorf("critical filter: %+v", list.Alarms)
	}
	if got := strings.TrimSpace(rec0.Body.String()); got != `{"alarms":[]}` {
		t.Errorf("no alarms: body %s, want an empty list", got)
	}
	if rec := r.call("tech-tower-1", "GET", "/api/v1/workorders?state=closed", nil); strings.TrimSpace(rec.Body.String()) != `{"work_orders":[]}` {
		t.Errorf("no work orders: %d %s, want an empty list", rec.Code, rec.Body.String())
	}
	for _, q := range []string{"?state=open", "?severity=fatal", "?since=yesterday", "?limit=0",
		"?until=9999-12-31T23:59:59Z", "?since=0001-01-01T00:00:00Z"} {
		if rec := r.call("pm-garden", "GET", "/api/v1/alarms"+q, nil); rec.Code != http.StatusBadRequest {
			t.Errorf("alarms%s: %d", q, rec.Code)
		}
	}
	for _, q := range []string{"/api/v1/workorders?until=9999-12-31T23:59:59Z", "/api/v1/stats/monthly?month=9999-12", "/api/v1/stats/monthly?month=0001-01"} {
		if rec := r.call("hq-admin", "GET", q, nil); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "outside the allowed range 2000-01-01T00:00:00Z to ") {
			t.Errorf("%s: %d %s, want 400 naming the allowed range", q, rec.Code, rec.Body.String())
		}
	}
	if rec := r.call("pm-garden", "GET", "/api/v1/alarms?project=tower", nil); rec.Code != http.StatusNotFound {
		t.Errorf("other project's alarms: %d", rec.Code)
	}
	r.decode(r.call("pm-garden", "GET", "/api/v1/alarms?project=garden", nil), 200, &list)
	for _, note := range []string{"bell\a", strings.Repeat("n", 4001)} {
		if rec := r.call("tech-garden-2", "POST", "/api/v1/alarms/"+list.Alarms[0].ID+"/ack", map[string]string{"note": note}); rec.Code != http.StatusBadRequest {
			t.Errorf("ack note %.10q…: %d %s, want 400", note, rec.Code, rec.Body.String())
		}
	}
	var acked alarm.Alarm
	r.decode(r.call("tech-garden-2", "POST", "/api/v1/alarms/"+list.Alarms[0].ID+"/ack", map[string]string{"note": "看到了"}), 200, &acked)
	if !acked.Acked || acked.AckedBy != "tech-garden-2" {
		t.Errorf("ack: %+v", acked)
	}

	// The order: listed for its technician, moved along, 409 with the allowed states.
	var orders struct {
		WorkOrders []workorder.WorkOrder `json:"work_orders"`
	}
	r.decode(r.call("tech-garden-1", "GET", "/api/v1/workorders?assignee=tech-garden-1&state=assigned", nil), 200, &orders)
	if len(orders.WorkOrders) != 1 || orders.WorkOrders[0].Device != "garden-pump-1" {
		t.Fatalf("technician's orders %+v", orders.WorkOrders)
	}
	wid := orders.WorkOrders[0].ID
	path := "/api/v1/workorders/" + wid + "/transitions"
	rec := r.call("tech-garden-1", "POST", path, workorder.TransitionRequest{To: workorder.StateResolved})
	if rec.Code != http.StatusConflict {
		t.Fatalf("assigned → resolved: %d %s", rec.Code, rec.Body.String())
	}
	var conflict struct {
		Error struct {
			Code    string   `json:"code"`
			Message string   `json:"message"`
			State   string   `json:"state"`
			Allowed []string `json:"allowed"`
		} `json:"error"`
	}
	r.decode(rec, http.StatusConflict, &conflict)
	if conflict.Error.Code != "conflict" || conflict.Error.State != workorder.StateAssigned ||
		!slices.Equal(conflict.Error.Allowed, []string{workorder.StateAssigned, workorder.StateAccepted, workorder.StateCancelled}) {
		t.Errorf("409 body %s", rec.Body.String())
	}
	if rec := r.call("tech-garden-1", "POST", path, map[string]any{"to": "accepted", "extra": 1}); rec.Code != http.StatusBadRequest {
		t.Errorf("unknown field: %d", rec.Code)
	}
	if rec := r.call("pm-garden", "POST", path, workorder.TransitionRequest{To: workorder.StateAccepted}); rec.Code != http.StatusForbidden {
		t.Errorf("manager accepts for the technician: %d", rec.Code)
	}
	for i, s := range []string{workorder.StateAccepted, workorder.StateInProgress, workorder.StateResolved} {
		r.clock.Set(monday10.Add(time.Duration(i+1) * 10 * time.Minute))
		var w workorder.WorkOrder
		r.decode(r.call("tech-garden-1", "POST", path, workorder.TransitionRequest{To: s, Note: "step " + s, Photo: "oss://photos/" + s + ".jpg"}), 200, &w)
		if w.State != s {
			t.Fatalf("state %s, want %s", w.State, s)
		}
	}
	var w workorder.WorkOrder
	r.decode(r.call("pm-garden", "GET", "/api/v1/workorders/"+wid, nil), 200, &w)
	var trail []string
	for _, ev := range w.History {
		trail = append(trail, ev.Who+":"+ev.From+"→"+ev.To)
	}
	if got := strings.Join(trail, " "); got != "system:→open system:open→assigned tech-garden-1:assigned→accepted tech-garden-1:accepted→in_progress tech-garden-1:in_progress→resolved" {
		t.Errorf("history %s", got)
	}
	if last := w.History[len(w.History)-1]; last.Photo != "oss://photos/resolved.jpg" || last.Note != "step resolved" {
		t.Errorf("last transition %+v", last)
	}

	// Manual order over HTTP.
	rec = r.call("pm-tower", "POST", "/api/v1/workorders", workorder.NewOrder{Project: "tower", Device: "tower-elevator-2", Title: "电梯按钮失灵", Skill: "elevator", Priority: 2})
	if rec.Code != http.StatusCreated || !strings.HasPrefix(rec.Header().Get("Location"), "/api/v1/workorders/wo-m-") {
		t.Fatalf("create: %d %s (Location %q)", rec.Code, rec.Body.String(), rec.Header().Get("Location"))
	}
	if rec := r.call("pm-tower", "POST", "/api/v1/workorders", workorder.NewOrder{Project: "tower", Title: ""}); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "title: required") {
		t.Errorf("create without title: %d %s", rec.Code, rec.Body.String())
	}

	// The device's record: its alarm and its order with the transitions.
	var hist History
	r.decode(r.call("tech-garden-1", "GET", "/api/v1/devices/garden-pump-1/history", nil), 200, &hist)
	if len(hist.Alarms) != 1 || len(hist.WorkOrders) != 1 || len(hist.WorkOrders[0].History) != 5 {
		t.Errorf("history: %d alarms, %d orders", len(hist.Alarms), len(hist.WorkOrders))
	}

	// HQ statistics for March 2025.
	var st workorder.Monthly
	r.decode(r.call("hq-viewer", "GET", "/api/v1/stats/monthly?month=2025-03", nil), 200, &st)
	if len(st.Projects) != 2 {
		t.Fatalf("stats projects %+v", st.Projects)
	}
	g := st.Projects[0]
	if g.Project != "garden" || g.Alarms.Total != 1 || g.Alarms.ByCategory["pump"] != 1 || g.WorkOrders.Total != 1 ||
		g.SLA.Met != 1 || g.SLA.CompliancePct == nil || *g.SLA.CompliancePct != 100 ||
		g.MeanTimeToRespondMin == nil || *g.MeanTimeToRespondMin != 10 || *g.MeanTimeToResolveMin != 30 ||
		len(g.TopFaults) != 1 || g.TopFaults[0].Rule != "pump-fault" || g.TopFaults[0].Code == nil || *g.TopFaults[0].Code != 3 {
		b, _ := json.Marshal(g)
		t.Errorf("garden stats %s", b)
	}
	if tw := st.Projects[1]; tw.WorkOrders.Total != 2 || tw.WorkOrders.BySource[workorder.SourceManual] != 1 || tw.SLA.Pending != 2 || tw.SLA.CompliancePct != nil {
		b, _ := json.Marshal(tw)
		t.Errorf("tower stats %s", b)
	}
	if rec := r.call("hq-admin", "GET", "/api/v1/stats/monthly?month=2025-13", nil); rec.Code != http.StatusBadRequest {
		t.Errorf("bad month: %d", rec.Code)
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	id, event, data string
}

// openStream connects to the alarm stream as staff over loopback.
func openStream(t *testing.T, base, staff, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/alarms/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[staff])
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.id != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

// next returns the next event or fails after the deadline.
func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return sseEvent{}
}

func TestAlarmStreamScopedAndResumable(t *testing.T) {
	r := newAPIRig(t)
	srv := httptest.NewServer(r.h)
	defer srv.Close()
	tech, closeTech := openStream(t, srv.URL, "tech-garden-1", "")
	defer closeTech()
	towerPM, closeTower := openStream(t, srv.URL, "pm-tower", "")
	defer closeTower()
	beta, closeBeta := openStream(t, srv.URL, "beta-admin", "")
	defer closeBeta()

	r.raiseDemoAlarms()
	// The garden technician: the garden alarm, then its order from the
	// moment it is assigned to them (the opening concerned nobody yet).
	ev := next(t, tech)
	var ae alarm.Event
	if err := json.Unmarshal([]byte(ev.data), &ae); err != nil || ev.event != "alarm" || ae.Alarm.Device != "garden-pump-1" || ae.Kind != alarm.EventRaise {
		t.Fatalf("first event %+v: %v", ev, err)
	}
	first, _ := strconv.ParseUint(ev.id, 10, 64)
	var kinds []string
	var last uint64 = first
	for len(kinds) < 1 {
		ev := next(t, tech)
		id, _ := strconv.ParseUint(ev.id, 10, 64)
		if id <= last {
			t.Fatalf("ids not increasing: %d after %d", id, last)
		}
		last = id
		var we workorder.Event
		if err := json.Unmarshal([]byte(ev.data), &we); err != nil || ev.event != "workorder" || we.Order.Project != "garden" {
			t.Fatalf("event %+v: %v", ev, err)
		}
		kinds = append(kinds, we.Action)
	}
	if strings.Join(kinds, ",") != "assign" {
		t.Errorf("work-order events %v", kinds)
	}
	// Tower's manager sees only tower; beta sees only beta.
	for i := 0; i < 3; i++ {
		if ev := next(t, towerPM); !strings.Contains(ev.data, `"project":"tower"`) || strings.Contains(ev.data, `"garden"`) {
			t.Fatalf("tower manager got %s", ev.data)
		}
		if ev := next(t, beta); !strings.Contains(ev.data, `"project":"harbour"`) || strings.Contains(ev.data, `"acme"`) {
			t.Fatalf("beta got %s", ev.data)
		}
	}
	// The technician acknowledges; the event follows on the stream.
	r.decode(r.call("tech-garden-1", "POST", "/api/v1/alarms/"+ae.Alarm.ID+"/ack", nil), 200, nil)
	if ev := next(t, tech); ev.event != "alarm" || !strings.Contains(ev.data, `"kind":"ack"`) {
		t.Fatalf("ack event %+v", ev)
	}
	closeTech()

	// Resume from the first event: what followed is replayed, in order.
	again, closeAgain := openStream(t, srv.URL, "tech-garden-1", strconv.FormatUint(first, 10))
	defer closeAgain()
	var replay []string
	for len(replay) < 2 {
		ev := next(t, again)
		replay = append(replay, ev.event)
	}
	if strings.Join(replay, ",") != "workorder,alarm" {
		t.Errorf("replay %v", replay)
	}
	// A fresh feed (a restarted cloud) resumes from storage.
	feed2 := alarm.NewFeed(0, r.clock.Now)
	feed2.Advance(r.feed.Last())
	feed2.AddBackfill(alarm.NewClickHouseLog(r.db.Conn()).Backfill)
	feed2.AddBackfill(workorder.NewClickHouseLog(r.db.Conn()).Backfill)
	items, err := feed2.Read(context.Background(), first, 10)
	if err != nil || len(items) < 5 || items[0].Seq <= first {
		t.Fatalf("backfill after restart: %v, %d items", err, len(items))
	}
	req := httptest.NewRequest("GET", "/api/v1/alarms/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["tech-garden-1"])
	req.Header.Set("Last-Event-ID", "abc")
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d", rec.Code)
	}
}
