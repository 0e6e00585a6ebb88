package agent

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plantroom/plantroom/edge/uplink"
	"github.com/plantroom/plantroom/internal/buildinfo"
)

type metrics struct {
	taken      prometheus.Counter
	suppressed prometheus.Counter
	rejected   *prometheus.CounterVec

	logMu      sync.Mutex
	lastLogged map[string]time.Time // device/cause → last log line
}

func newMetrics(reg *prometheus.Registry, a *Agent) (*metrics, error) {
	m := &metrics{
		taken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_readings_taken_total",
			Help: "Readings handed to the durable queue (after report by exception).",
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_readings_suppressed_total",
			Help: "Readings not sent because they did not change beyond their deadband within the heartbeat.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_readings_rejected_total",
			Help: "Readings the queue refused, by cause: overloaded (the disk is behind), invalid, closed.",
		}, []string{"cause"}),
		lastLogged: map[string]time.Time{},
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "plantroom_edge_agent_info",
		Help:        "The agent's version and gateway; always 1.",
		ConstLabels: prometheus.Labels{"version": Version, "gateway": a.cfg.Gateway.ID},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{
		m.taken, m.suppressed, m.rejected, info, buildinfo.Collector("edge-agent"), queueCollector{a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register agent metrics: %w", err)
		}
	}
	return m, nil
}

// logRejected logs a refused add at most once a minute per device and cause.
func (m *metrics) logRejected(log *slog.Logger, device, cause string, err error) {
	key := device + "/" + cause
	now := time.Now()
	m.logMu.Lock()
	if now.Sub(m.lastLogged[key]) < time.Minute {
		m.logMu.Unlock()
		return
	}
	m.lastLogged[key] = now
	m.logMu.Unlock()
	log.Warn("readings not queued", "device", device, "cause", cause, "err", err)
}

// queueCollector exports the queue's state at scrape time.
type queueCollector struct{ a *Agent }

var (
	descItems     = prometheus.NewDesc("plantroom_edge_queue_items", "Items (one device poll or message each) in the queue.", nil, nil)
	descBytes     = prometheus.NewDesc("plantroom_edge_queue_bytes", "Bytes the queued items take (the bound is queue.max_bytes).", nil, nil)
	descMaxBytes  = prometheus.NewDesc("plantroom_edge_queue_max_bytes", "The configured bound of the queue.", nil, nil)
	descBound     = prometheus.NewDesc("plantroom_edge_queue_bound_bytes", "The bound in force: queue.max_bytes, or less while the disk holds under queue.min_free.", nil, nil)
	descDiskFree  = prometheus.NewDesc("plantroom_edge_queue_disk_free_bytes", "Free space on the queue's filesystem at the last commit (-1: unknown).", nil, nil)
	descFile      = prometheus.NewDesc("plantroom_edge_queue_file_bytes", "Size of the queue file on disk.", nil, nil)
	descReadings  = prometheus.NewDesc("plantroom_edge_queue_readings", "Readings in the queue, by state: live and backlog (queued, not yet sent), inflight (published, waiting for PUBACK), awaiting_commit (PUBACKed, waiting for the cloud's commit acknowledgement).", []string{"state"}, nil)
	descBatches   = prometheus.NewDesc("plantroom_edge_queue_batches", "Formed batches not yet committed, by state: inflight, awaiting_commit.", []string{"state"}, nil)
	descDropSent  = prometheus.NewDesc("plantroom_edge_queue_dropped_sent_readings_total", "Part of dropped_readings_total that was in batches awaiting commit: sent, so the cloud may have stored them.", nil, nil)
	descRejected  = prometheus.NewDesc("plantroom_edge_queue_rejected_batches_total", "Batches the cloud rejected for good (deleted, not re-sent; a batch_rejected event each), by cause.", []string{"cause"}, nil)
	descRejReads  = prometheus.NewDesc("plantroom_edge_queue_rejected_readings_total", "Readings in batches the cloud rejected, by cause.", []string{"cause"}, nil)
	descOldest    = prometheus.NewDesc("plantroom_edge_queue_oldest_age_seconds", "Age of the oldest queued item; 0 when empty.", nil, nil)
	descEvents    = prometheus.NewDesc("plantroom_edge_queue_events", "Gateway events waiting to be sent.", nil, nil)
	descCommitted = prometheus.NewDesc("plantroom_edge_queue_committed_readings_total", "Readings made durable (fsync'ed).", nil, nil)
	descCommits   = prometheus.NewDesc("plantroom_edge_queue_commits_total", "Group commits of the queue.", nil, nil)
	descDropped   = prometheus.NewDesc("plantroom_edge_queue_dropped_readings_total", "Oldest readings deleted because the queue reached its bound (max_bytes, or what fits on a nearly full disk).", nil, nil)
	descCorrupt   = prometheus.NewDesc("plantroom_edge_queue_corrupt_items_total", "Items that failed their checksum and were deleted.", nil, nil)
	descCommitErr = prometheus.NewDesc("plantroom_edge_queue_commit_errors_total", "Failed commits (the work is retried).", nil, nil)
)

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descItems, descBytes, descMaxBytes, descBound, descDiskFree, descFile, descReadings, descBatches,
		descOldest, descEvents, descCommitted, descCommits, descDropped, descDropSent, descRejected, descRejReads, descCorrupt, descCommitErr} {
		ch <- d
	}
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.queue.Stats()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cnt := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	g(descItems, float64(st.Items))
	g(descBytes, float64(st.Bytes))
	g(descMaxBytes, float64(c.a.cfg.Queue.MaxBytes))
	g(descBound, float64(st.BoundBytes))
	g(descDiskFree, float64(st.DiskFreeBytes))
	g(descFile, float64(st.FileBytes))
	g(descReadings, float64(st.LiveReadings), "live")
	g(descReadings, float64(st.BacklogReadings), "backlog")
	g(descReadings, float64(st.InFlightReadings), "inflight")
	g(descReadings, float64(st.AwaitingReadings), "awaiting_commit")
	g(descBatches, float64(st.InFlightBatches), "inflight")
	g(descBatches, float64(st.AwaitingBatches), "awaiting_commit")
	for cause, r := range st.Rejected {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(r.Batches), cause)
		ch <- prometheus.MustNewConstMetric(descRejReads, prometheus.CounterValue, float64(r.Readings), cause)
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = time.Since(st.Oldest).Seconds()
	}
	g(descOldest, age)
	g(descEvents, float64(st.Events))
	cnt(descCommitted, st.CommittedReadings)
	cnt(descCommits, st.Commits)
	cnt(descDropped, st.DroppedReadings)
	cnt(descDropSent, st.DroppedSentReadings)
	cnt(descCorrupt, st.CorruptItems)
	cnt(descCommitErr, st.CommitErrors)
}

// Health is the /healthz document.
type Health struct {
	Status string `json:"status"` // "ok", or "degraded" when the uplink is down, no commit acknowledgement came for too long, a device is offline or the disk has less than queue.min_free free
	// Reasons says why the status is degraded, one sentence each.
	Reasons []string     `json:"reasons"`
	Gateway string       `json:"gateway"`
	Version string       `json:"version"`
	Uplink  HealthUplink `json:"uplink"`
	Queue   HealthQueue  `json:"queue"`
	Devices HealthDevs   `json:"devices"`
}

// HealthUplink is the uplink part of /healthz.
type HealthUplink struct {
	Connected bool   `json:"connected"`
	Broker    string `json:"broker"`
	// CommitWaitSeconds is how long batches have waited with no commit
	// acknowledgement at all (0: none waits); LastCommitAck the time of the
	// last one (empty: none since start).
	CommitWaitSeconds float64 `json:"commit_wait_seconds"`
	LastCommitAck     string  `json:"last_commit_ack,omitempty"`
}

// HealthQueue is the queue part of /healthz.
type HealthQueue struct {
	Items            int64   `json:"items"`
	Bytes            int64   `json:"bytes"`
	MaxBytes         int64   `json:"max_bytes"`
	BoundBytes       int64   `json:"bound_bytes"`     // max_bytes, or less on a nearly full disk
	DiskFreeBytes    int64   `json:"disk_free_bytes"` // -1: unknown
	Readings         int64   `json:"readings"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	DroppedReadings  int64   `json:"dropped_readings"`
	BacklogReadings  int64   `json:"backlog_readings"`
	// InFlightReadings are published and wait for their PUBACK;
	// AwaitingCommitReadings wait for the cloud's commit acknowledgement.
	// Both stay in the queue until a commit acknowledgement covers them.
	InFlightReadings       int64 `json:"inflight_readings"`
	AwaitingCommitReadings int64 `json:"awaiting_commit_readings"`
	AwaitingCommitBatches  int   `json:"awaiting_commit_batches"`
	// DrainSeconds estimates the time until the backlog is committed:
	// backlog, in-flight and awaiting-commit readings at uplink.backlog_rate.
	DrainSeconds float64 `json:"drain_seconds"`
}

// HealthDevs is the devices part of /healthz.
type HealthDevs struct {
	Modbus  int      `json:"modbus"`
	MQTT    int      `json:"mqtt"`
	Offline []string `json:"offline"` // Modbus devices not answering
}

// Health returns the agent's current health.
func (a *Agent) Health() Health {
	st := a.queue.Stats()
	set := a.devices.Load()
	h := Health{
		Status: "ok", Gateway: a.cfg.Gateway.ID, Version: Version,
		Uplink: HealthUplink{Connected: a.uplink.Connected(), Broker: a.cfg.Uplink.Broker},
		Queue: HealthQueue{
			Items: st.Items, Bytes: st.Bytes, MaxBytes: int64(a.cfg.Queue.MaxBytes), Readings: st.Readings,
			BoundBytes: st.BoundBytes, DiskFreeBytes: st.DiskFreeBytes,
			DroppedReadings: st.DroppedReadings, BacklogReadings: st.BacklogReadings,
			InFlightReadings: st.InFlightReadings, AwaitingCommitReadings: st.AwaitingReadings, AwaitingCommitBatches: st.AwaitingBatches,
			DrainSeconds: float64(st.BacklogReadings+st.InFlightReadings+st.AwaitingReadings) / cmp.Or(a.cfg.Uplink.BacklogRate, uplink.DefaultBacklogRate),
		},
		Devices: HealthDevs{Modbus: len(set.modbus), MQTT: len(set.mqtt), Offline: []string{}},
		Reasons: []string{},
	}
	cw := a.uplink.CommitWait()
	h.Uplink.CommitWaitSeconds = cw.Waiting.Seconds()
	if !cw.LastAck.IsZero() {
		h.Uplink.LastCommitAck = cw.LastAck.UTC().Format(time.RFC3339)
	}
	if !st.Oldest.IsZero() {
		h.Queue.OldestAgeSeconds = time.Since(st.Oldest).Seconds()
	}
	for id, ds := range a.poller.Stats() {
		if !ds.Online && ds.ConsecutiveFailures > 0 {
			h.Devices.Offline = append(h.Devices.Offline, id)
		}
	}
	sort.Strings(h.Devices.Offline)
	if !h.Uplink.Connected {
		h.Reasons = append(h.Reasons, fmt.Sprintf("uplink not connected to %s", a.cfg.Uplink.Broker))
	}
	if cw.Degraded {
		h.Reasons = append(h.Reasons, fmt.Sprintf("no commit acknowledgement for %s (uplink.commit_degraded_after %s) with %d batches awaiting commit: "+
			"readings are kept and re-sent; check that the cloud's ingest runs, speaks protocol v2 and may publish to this gateway's down/ack topic",
			cw.Waiting.Round(time.Second), a.cfg.Uplink.CommitDegradedAfter, st.AwaitingBatches))
	}
	if len(h.Devices.Offline) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d devices not answering", len(h.Devices.Offline)))
	}
	if st.DiskShort {
		h.Reasons = append(h.Reasons, fmt.Sprintf("disk has %d bytes free, below queue.min_free", st.DiskFreeBytes))
	}
	if len(h.Reasons) > 0 {
		h.Status = "degraded"
	}
	return h
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Health())
	})
	return mux
}
