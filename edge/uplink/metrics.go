package uplink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connected       prometheus.Gauge
	inflight        prometheus.Gauge
	connectAttempts prometheus.Counter
	connectErrors   prometheus.Counter
	resent          prometheus.Counter
	events          prometheus.Counter
	batches         *prometheus.CounterVec
	readings        *prometheus.CounterVec
	latency         prometheus.Histogram
	acks            *prometheus.CounterVec
	committed       prometheus.Counter
	commitTimeouts  prometheus.Counter
	commitLatency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, q Queue, backlogRate float64) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plantroom_edge_uplink_connected", Help: "1 while a session with the cloud broker is up.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plantroom_edge_uplink_inflight_messages", Help: "Messages published and not yet acknowledged (PUBACK).",
		}),
		connectAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_connect_attempts_total", Help: "Connection attempts to the cloud broker.",
		}),
		connectErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_connect_errors_total", Help: "Failed connection attempts.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_resent_batches_total", Help: "Batches published again, byte for byte under the same seq: after a reconnect or restart, or after a commit timeout.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_events_published_total", Help: "Gateway events acknowledged by the broker.",
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_batches_published_total", Help: "Telemetry batches acknowledged by the broker (PUBACK), by lane (live, backlog); re-sends included.",
		}, []string{"lane"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_uplink_readings_published_total", Help: "Readings in acknowledged batches, by lane.",
		}, []string{"lane"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "plantroom_edge_uplink_publish_latency_seconds", Help: "Time from publishing a batch to its PUBACK.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	m.acks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plantroom_edge_uplink_commit_acks_total",
		Help: "Commit acknowledgements received on down/ack, by result: applied, other_epoch (ignored), invalid (ignored).",
	}, []string{"result"})
	for _, r := range []string{"applied", "other_epoch", "invalid"} {
		m.acks.WithLabelValues(r)
	}
	m.committed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plantroom_edge_uplink_committed_batches_total", Help: "Batches a commit acknowledgement covered (deleted from the queue).",
	})
	m.commitTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plantroom_edge_uplink_commit_timeouts_total",
		Help: "Batches re-sent because no commit acknowledgement came within uplink.commit_timeout (doubling per re-send).",
	})
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "plantroom_edge_uplink_commit_latency_seconds", Help: "Time from publishing a batch to the commit acknowledgement that covered it.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300},
	})
	drain := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "plantroom_edge_uplink_backlog_drain_seconds",
		Help: "Estimated time until the backlog is committed: backlog, in-flight and awaiting-commit readings at the configured backlog rate.",
	}, func() float64 {
		st := q.Stats()
		return float64(st.BacklogReadings+st.InFlightReadings+st.AwaitingReadings) / backlogRate
	})
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connected, m.inflight, m.connectAttempts, m.connectErrors,
		m.resent, m.events, m.batches, m.readings, m.latency, m.acks, m.committed, m.commitTimeouts, m.commitLatency, drain} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register uplink metrics: %w", err)
		}
	}
	return m, nil
}
