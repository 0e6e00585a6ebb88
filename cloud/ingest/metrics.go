package ingest

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages         *prometheus.CounterVec // by kind
	rejectedMessages *prometheus.CounterVec // by cause
	readings         prometheus.Counter
	rejectedReadings *prometheus.CounterVec // by cause
	badReadings      *prometheus.CounterVec // stored with bad quality, by cause
	duplicates       prometheus.Counter
	acks             prometheus.Counter
	ackErrors        prometheus.Counter
	reannounced      prometheus.Counter
	batchRows        prometheus.Histogram
	flushSeconds     prometheus.Histogram
	unacked          prometheus.Gauge
	chErrors         prometheus.Counter
	quarantined      *prometheus.CounterVec // rows ClickHouse refused, by kind and cause
	refusedWrites    prometheus.Counter
	connected        prometheus.Gauge
	connectionLosses prometheus.Counter
	events           *prometheus.CounterVec // derived presence events by kind
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_messages_total",
			Help: "MQTT messages received, by kind (telemetry, status, events).",
		}, []string{"kind"}),
		rejectedMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_messages_rejected_total",
			Help: "Messages dropped whole, by cause (malformed payload, unknown gateway, topic mismatch, …).",
		}, []string{"cause"}),
		readings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_readings_total",
			Help: "Readings committed to ClickHouse (redeliveries included).",
		}),
		badReadings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_readings_bad_total",
			Help: "Readings stored with bad quality (kept for audit, left out of energy, latest values and alarms), by cause.",
		}, []string{"cause"}),
		rejectedReadings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_readings_rejected_total",
			Help: "Single readings dropped from otherwise good batches, by cause (unknown_device, future).",
		}, []string{"cause"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_duplicate_batches_total",
			Help: "Telemetry batches recognised as already committed (same epoch, seq and CRC) and acknowledged again without a second insert.",
		}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_acks_published_total",
			Help: "Commit acknowledgements published on gateways' down/ack topics (re-announcements included).",
		}),
		ackErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_ack_errors_total",
			Help: "Commit acknowledgements the broker did not take (the gateway re-sends the batches; check the ingest's publish rights on down/ack).",
		}),
		reannounced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_reannouncements_total",
			Help: "Gateways that came online and were sent the committed seqs of their current epoch.",
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plantroom_ingest_flush_rows",
			Help:    "Readings per ClickHouse insert.",
			Buckets: prometheus.ExponentialBuckets(10, 4, 8),
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plantroom_ingest_flush_seconds",
			Help:    "Time to commit one flush to ClickHouse, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		unacked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plantroom_ingest_unacked_messages",
			Help: "Messages received and not yet acknowledged (waiting for their ClickHouse commit).",
		}),
		chErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_clickhouse_errors_total",
			Help: "Failed ClickHouse writes of a flush that are retried (server or network down, timeout, too many parts, …).",
		}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_quarantined_total",
			Help: "Readings and events ClickHouse refused (a permanent error, e.g. check_failed, type_mismatch), kept in the quarantine table while the rest of their batches was stored and acknowledged; by kind (reading, event) and cause.",
		}, []string{"kind", "cause"}),
		refusedWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_clickhouse_refused_writes_total",
			Help: "Writes of a flush's readings or events that ClickHouse refused (a permanent error), each followed by a search for the refused rows.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plantroom_ingest_mqtt_connected",
			Help: "1 while the ingest is connected to the MQTT broker.",
		}),
		connectionLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_ingest_mqtt_connection_losses_total",
			Help: "Times the ingest lost its connection to the MQTT broker.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_ingest_presence_events_total",
			Help: "Presence events the ingest derived itself (device_stale, device_fresh), and last wills it ignored because the gateway was connected again (stale_last_will).",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.badReadings, m.messages, m.rejectedMessages, m.readings, m.rejectedReadings, m.duplicates,
			m.batchRows, m.flushSeconds, m.unacked, m.chErrors, m.connected, m.connectionLosses, m.events,
			m.acks, m.ackErrors, m.reannounced, m.quarantined, m.refusedWrites)
	}
	return m
}

// onceLog logs the first occurrence of each rejection cause; later ones are
// only counted. Causes are a small fixed set, plus one key per unknown
// device, bounded by maxKeys.
type onceLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]bool
}

const maxOnceKeys = 10000

func (o *onceLog) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[key] || len(o.seen) >= maxOnceKeys {
		return false
	}
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	o.seen[key] = true
	return true
}
