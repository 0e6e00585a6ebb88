package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/plantroom/plantroom/config"
)

// Formats of a webhook target (config.Webhook.Format).
const (
	FormatJSON     = "json"
	FormatWeCom    = "wecom"
	FormatDingTalk = "dingtalk"
)

// Headers of JSON deliveries. The signature is
// "sha256=" + hex(HMAC-SHA256(secret, body)).
const (
	HeaderSignature = "X-Plantroom-Signature"
	HeaderTimestamp = "X-Plantroom-Timestamp" // Unix seconds of the attempt
	HeaderEvent     = "X-Plantroom-Event"
	HeaderDelivery  = "X-Plantroom-Delivery" // Message.ID, the same on every retry
)

// Config configures Webhooks. Org is required.
type Config struct {
	Org    *config.Org
	Client *http.Client // default: 10 s timeout
	// QueueSize bounds the deliveries waiting or retrying. Default 1000.
	QueueSize int
	// MaxAttempts per delivery. Default 8.
	MaxAttempts int
	// Backoff doubles from InitialBackoff (default 2s) up to MaxBackoff
	// (default 5m), with ±20% jitter.
	InitialBackoff, MaxBackoff time.Duration
	Workers                    int // concurrent senders, default 2
	Logger                     *slog.Logger
	Registerer                 prometheus.Registerer
	Now                        func() time.Time
}

func (c *Config) validate() error {
	var p config.Problems
	if c.Org == nil {
		p.Addf("Org", "required")
	}
	for name, v := range map[string]int{"QueueSize": c.QueueSize, "MaxAttempts": c.MaxAttempts, "Workers": c.Workers} {
		if v < 0 {
			p.Addf(name, "must be >= 0, got %d", v)
		}
	}
	if c.InitialBackoff < 0 || c.MaxBackoff < 0 {
		p.Addf("InitialBackoff", "backoffs must be >= 0")
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("cannot create webhooks: %w", err)
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1000
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = 2 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	c.MaxBackoff = max(c.MaxBackoff, c.InitialBackoff)
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Webhooks delivers messages to each project's webhook targets. New →
// Start → Stop; Notify never blocks.
type Webhooks struct {
	cfg     Config
	targets map[string][]config.Webhook // project id → targets
	ready   chan *delivery
	m       *metrics

	mu      sync.Mutex
	pending int // deliveries queued, in flight or waiting to retry
	timers  map[*time.Timer]struct{}
	stopped bool

	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type delivery struct {
	target  config.Webhook
	msg     Message
	attempt int
}

// New indexes the projects' webhook targets.
func New(cfg Config) (*Webhooks, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Webhooks{cfg: cfg, targets: map[string][]config.Webhook{}, ready: make(chan *delivery, cfg.QueueSize),
		timers: map[*time.Timer]struct{}{}, m: newMetrics(cfg.Registerer)}
	for _, c := range cfg.Org.Companies {
		for _, p := range c.Projects {
			for _, t := range p.Webhooks {
				if t.Format == "" {
					t.Format = FormatJSON
				}
				w.targets[p.ID] = append(w.targets[p.ID], t)
			}
		}
	}
	return w, nil
}

// Start starts the senders.
func (w *Webhooks) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	for i := 0; i < w.cfg.Workers; i++ {
		w.wg.Add(1)
		go w.send(ctx)
	}
	return nil
}

// Stop ends the senders; deliveries still queued or waiting are dropped
// and counted. It may be called more than once.
func (w *Webhooks) Stop() {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.stopped = true
		for t := range w.timers {
			if t.Stop() {
				w.pending--
				w.m.deliveries.WithLabelValues("dropped").Inc()
			}
		}
		w.timers = nil
		w.mu.Unlock()
		if w.cancel != nil {
			w.cancel()
		}
		w.wg.Wait()
		for {
			select {
			case <-w.ready:
				w.done("dropped")
			default:
				return
			}
		}
	})
}

// Notify queues m for every webhook of m.Project. When the queue is full
// the delivery is dropped and counted.
func (w *Webhooks) Notify(m Message) {
	for _, t := range w.targets[m.Project] {
		w.enqueue(&delivery{target: t, msg: m})
	}
}

func (w *Webhooks) enqueue(d *delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.pending >= w.cfg.QueueSize {
		w.m.deliveries.WithLabelValues("dropped").Inc()
		return
	}
	w.pending++
	w.m.queued.Set(float64(w.pending))
	w.ready <- d // cannot block: pending < QueueSize = cap(ready)
}

// done ends a delivery with result (sent, failed, dropped).
func (w *Webhooks) done(result string) {
	w.mu.Lock()
	w.pending--
	w.m.queued.Set(float64(w.pending))
	w.mu.Unlock()
	w.m.deliveries.WithLabelValues(result).Inc()
}

func (w *Webhooks) send(ctx context.Context) {
	defer w.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-w.ready:
			w.attempt(ctx, d)
		}
	}
}

// attempt sends d once and schedules a retry when that may help.
func (w *Webhooks) attempt(ctx context.Context, d *delivery) {
	d.attempt++
	err := w.post(ctx, d)
	format := d.target.Format
	if err == nil {
		w.m.attempts.WithLabelValues(format, "ok").Inc()
		w.done("sent")
		return
	}
	w.m.attempts.WithLabelValues(format, "error").Inc()
	var perm *permanentError
	if errors.As(err, &perm) || d.attempt >= w.cfg.MaxAttempts || ctx.Err() != nil {
		w.cfg.Logger.Warn("webhook delivery failed", "project", d.msg.Project, "url", redact(d.target.URL),
			"format", format, "message", d.msg.ID, "attempts", d.attempt, "err", err)
		w.done("failed")
		return
	}
	backoff := w.cfg.InitialBackoff << (d.attempt - 1)
	if backoff > w.cfg.MaxBackoff || backoff <= 0 {
		backoff = w.cfg.MaxBackoff
	}
	backoff = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		w.pending--
		w.m.deliveries.WithLabelValues("dropped").Inc()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(backoff, func() {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return
		}
		delete(w.timers, t)
		w.ready <- d // its slot is still counted in pending
		w.mu.Unlock()
	})
	w.timers[t] = struct{}{}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// post makes one HTTP attempt.
func (w *Webhooks) post(ctx context.Context, d *delivery) error {
	body, target, err := render(d.target, d.msg, w.cfg.Now())
	if err != nil {
		return &permanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("cannot build request for %q: %w", redact(d.target.URL), err)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "plantroom-webhooks/1")
	if d.target.Format == FormatJSON {
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(w.cfg.Now().Unix(), 10))
		req.Header.Set(HeaderEvent, d.msg.Event)
		req.Header.Set(HeaderDelivery, d.msg.ID)
		if d.target.Secret != "" {
			req.Header.Set(HeaderSignature, Sign(d.target.Secret, body))
		}
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot post to %q: %w", redact(d.target.URL), err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("cannot post to %q: status %d", redact(d.target.URL), resp.StatusCode)
	case resp.StatusCode >= 300:
		return &permanentError{fmt.Errorf("cannot post to %q: status %d: %s", redact(d.target.URL), resp.StatusCode, truncate(string(reply), 200))}
	}
	if d.target.Format == FormatWeCom || d.target.Format == FormatDingTalk {
		// Group robots answer 200 with {"errcode":…,"errmsg":…}.
		var r struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("cannot read %s robot reply %q: %w", d.target.Format, truncate(string(reply), 200), err)
		}
		if r.ErrCode != 0 {
			return fmt.Errorf("%s robot refused the message: errcode %d: %s", d.target.Format, r.ErrCode, r.ErrMsg)
		}
	}
	return nil
}

type metrics struct {
	deliveries *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	queued     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		deliveries: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_webhook_deliveries_total",
			Help: "Webhook deliveries by final result: sent, failed (after retries or refused), dropped (queue full or shutdown)."}, []string{"result"}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{Name: "plantroom_webhook_attempts_total",
			Help: "Webhook HTTP attempts by format and result."}, []string{"format", "result"}),
		queued: f.NewGauge(prometheus.GaugeOpts{Name: "plantroom_webhook_pending",
			Help: "Webhook deliveries queued, in flight or waiting to retry."}),
	}
}
