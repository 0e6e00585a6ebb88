package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/config"
)

// receiver is a loopback HTTP server recording requests; status decides
// each answer.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
	status func(n int) (int, string)
}

func newReceiver(t *testing.T, status func(n int) (int, string)) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.bodies = append(r.bodies, b)
		n := len(r.reqs)
		r.mu.Unlock()
		code, body := r.status(n)
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func orgWith(hooks ...config.Webhook) *config.Org {
	return &config.Org{Companies: []config.Company{{ID: "acme", Projects: []config.Project{{ID: "garden", Webhooks: hooks}, {ID: "tower"}}}}}
}

func start(t *testing.T, cfg Config) (*Webhooks, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff = 5 * time.Millisecond
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, reg
}

var msg = Message{ID: "alarm/x/1", Event: "alarm.raise", Company: "acme", Project: "garden", Severity: "critical",
	Title: "[紧急] 电梯困人", Text: "**[紧急] 电梯困人**\n> 设备 device: garden-elevator-1", At: time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)}

func TestJSONSignedAndRetried(t *testing.T) {
	rcv := newReceiver(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusBadGateway, "busy"
		}
		return http.StatusOK, "ok"
	})
	w, reg := start(t, Config{Org: orgWith(config.Webhook{URL: rcv.srv.URL + "/hook", Secret: "s3cret"})})
	w.Notify(msg)
	w.Notify(Message{Project: "tower"}) // no targets
	waitFor(t, "delivery after two failures", func() bool {
		return value(w.m.deliveries.WithLabelValues("sent")) == 1
	})
	if n := rcv.count(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	rcv.mu.Lock()
	req, body := rcv.reqs[2], rcv.bodies[2]
	rcv.mu.Unlock()
	sig := req.Header.Get(HeaderSignature)
	if !hmac.Equal([]byte(sig), []byte(Sign("s3cret", body))) || !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Errorf("signature %q does not match the body", sig)
	}
	if ts, err := strconv.ParseInt(req.Header.Get(HeaderTimestamp), 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("timestamp header %q", req.Header.Get(HeaderTimestamp))
	}
	if req.Header.Get(HeaderDelivery) != "alarm/x/1" || req.Header.Get(HeaderEvent) != "alarm.raise" {
		t.Errorf("headers %v", req.Header)
	}
	var got Message
	if err := json.Unmarshal(body, &got); err != nil || got.ID != msg.ID || got.Title != msg.Title || !got.At.Equal(msg.At) {
		t.Errorf("body %s: %v", body, err)
	}
	if v := value(w.m.attempts.WithLabelValues("json", "error")); v != 2 {
		t.Errorf("%v failed attempts counted, want 2", v)
	}
	fams, err := reg.Gather()
	if err != nil || len(fams) == 0 || fams[0].GetName() != "plantroom_webhook_attempts_total" {
		t.Errorf("metrics not registered: %v", err)
	}
}

func TestRobotFormats(t *testing.T) {
	var wecomBody, dingBody atomic.Value
	var dingQuery atomic.Value
	wecom := newReceiver(t, func(int) (int, string) { return 200, `{"errcode":0,"errmsg":"ok"}` })
	ding := newReceiver(t, func(int) (int, string) { return 200, `{"errcode":0,"errmsg":"ok"}` })
	now := time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)
	w, _ := start(t, Config{Now: func() time.Time { return now }, Org: orgWith(
		config.Webhook{URL: wecom.srv.URL + "/cgi-bin/webhook/send?key=abc", Format: FormatWeCom},
		config.Webhook{URL: ding.srv.URL + "/robot/send?access_token=tok", Format: FormatDingTalk, Secret: "SECxyz"},
	)})
	w.Notify(msg)
	waitFor(t, "both robots", func() bool { return wecom.count() == 1 && ding.count() == 1 })
	wecom.mu.Lock()
	wecomBody.Store(string(wecom.bodies[0]))
	wecom.mu.Unlock()
	ding.mu.Lock()
	dingBody.Store(string(ding.bodies[0]))
	dingQuery.Store(ding.reqs[0].URL.Query())
	ding.mu.Unlock()

	var wb struct {
		MsgType  string `json:"msgtype"`
		Markdown struct {
			Content string `json:"content"`
		} `json:"markdown"`
	}
	if err := json.Unmarshal([]byte(wecomBody.Load().(string)), &wb); err != nil || wb.MsgType != "markdown" || wb.Markdown.Content != msg.Text {
		t.Errorf("wecom body %s: %v", wecomBody.Load(), err)
	}
	var db struct {
		MsgType  string `json:"msgtype"`
		Markdown struct {
			Title string `json:"title"`
			Text  string `json:"text"`
		} `json:"markdown"`
	}
	if err := json.Unmarshal([]byte(dingBody.Load().(string)), &db); err != nil || db.MsgType != "markdown" || db.Markdown.Title != msg.Title ||
		db.Markdown.Text != strings.ReplaceAll(msg.Text, "\n", "\n\n") {
		t.Errorf("dingtalk body %s: %v", dingBody.Load(), err)
	}
	q := dingQuery.Load().(interface{ Get(string) string })
	if q.Get("access_token") != "tok" || q.Get("timestamp") != strconv.FormatInt(now.UnixMilli(), 10) || q.Get("sign") != DingTalkSign("SECxyz", now.UnixMilli()) {
		t.Errorf("dingtalk query %v", q)
	}
	// DingTalk's documented algorithm (its Python sample, run independently) for a fixed input.
	if got := DingTalkSign("this is secret", 1577836800000); got != "fFV9t5lBS7KH4+5B0JjR99ab+AJkXFauQXycgTkS/tc=" {
		t.Errorf("DingTalkSign = %q", got)
	}
}

func TestRefusalsAndBounds(t *testing.T) {
	var robotCalls atomic.Int32
	refuse := newReceiver(t, func(int) (int, string) { return http.StatusBadRequest, "bad" })
	robot := newReceiver(t, func(int) (int, string) {
		robotCalls.Add(1)
		return 200, `{"errcode":93000,"errmsg":"invalid webhook url"}`
	})
	w, _ := start(t, Config{MaxAttempts: 3, Org: orgWith(
		config.Webhook{URL: refuse.srv.URL},
		config.Webhook{URL: robot.srv.URL, Format: FormatWeCom},
	)})
	w.Notify(msg)
	waitFor(t, "both failed", func() bool { return value(w.m.deliveries.WithLabelValues("failed")) == 2 })
	if refuse.count() != 1 {
		t.Errorf("a 400 was retried: %d attempts", refuse.count())
	}
	if robotCalls.Load() != 3 {
		t.Errorf("robot errcode: %d attempts, want MaxAttempts 3", robotCalls.Load())
	}

	// A full queue drops and counts instead of blocking.
	block := make(chan struct{})
	slow := newReceiver(t, func(int) (int, string) { <-block; return 200, "" })
	w2, _ := start(t, Config{QueueSize: 2, Workers: 1, Org: orgWith(config.Webhook{URL: slow.srv.URL})})
	for i := 0; i < 5; i++ {
		w2.Notify(msg)
	}
	if d := value(w2.m.deliveries.WithLabelValues("dropped")); d != 3 {
		t.Errorf("%v dropped, want 3", d)
	}
	close(block)
	waitFor(t, "the queued two", func() bool { return value(w2.m.deliveries.WithLabelValues("sent")) == 2 })
	w2.Stop()
	w2.Stop()
	w2.Notify(msg)
	if d := value(w2.m.deliveries.WithLabelValues("dropped")); d != 4 {
		t.Errorf("notify after stop: %v dropped, want 4", d)
	}
}

func TestNewReportsProblems(t *testing.T) {
	_, err := New(Config{QueueSize: -1, Workers: -2})
	if err == nil || !strings.Contains(err.Error(), "Org: required") || !strings.Contains(err.Error(), "QueueSize: must be >= 0, got -1") ||
		!strings.Contains(err.Error(), "Workers: must be >= 0, got -2") {
		t.Fatalf("error: %v", err)
	}
}

// value reads a counter.
func value(c prometheus.Collector) float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil || len(fams) != 1 || len(fams[0].GetMetric()) != 1 {
		panic(fmt.Sprintf("BUG: cannot read metric: %v", err))
	}
	return fams[0].GetMetric()[0].GetCounter().GetValue()
}

func TestMarkdownEscapes(t *testing.T) {
	in := "**粗** _x_ `c` [a](http://e.x) ![i](u) <font color=red>#h ~s~ |t| \\ line\nnext\r\n> 处理人 assignee: boss"
	got := Markdown(in)
	want := `\*\*粗\*\* \_x\_ \` + "`c\\`" + ` \[a\]\(http://e.x\) \!\[i\]\(u\) \<font color=red\>\#h \~s\~ \|t\| \\ line next \> 处理人 assignee: boss`
	if got != want {
		t.Errorf("Markdown:\n got %s\nwant %s", got, want)
	}
	if got := Line("a\nb\tc\r\nd"); got != "a b c d" {
		t.Errorf("Line = %q", got)
	}
}
