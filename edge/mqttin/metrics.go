package mqttin

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages  *prometheus.CounterVec
	readings  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	unknown   prometheus.Counter
	refused   prometheus.Counter
	connected prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_mqtt_messages_total",
			Help: "MQTT messages received from each device (telemetry and availability).",
		}, []string{"device"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_mqtt_readings_total",
			Help: "Readings mapped from each device's MQTT messages.",
		}, []string{"device"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_mqtt_errors_total",
			Help: "MQTT message fields of each device that could not be mapped, by cause (malformed, value, unusable, too_large, availability), and readings outside their valid range (out_of_range: kept with bad quality).",
		}, []string{"device", "cause"}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_mqtt_unknown_topic_messages_total",
			Help: "MQTT messages on a topic that belongs to no configured device.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_edge_mqtt_refused_connections_total",
			Help: "Connections the embedded broker refused: unknown user or wrong password.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plantroom_edge_mqtt_connected",
			Help: "1 while the MQTT input can receive device messages (embedded broker serving, or connected to the external broker).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.messages, m.readings, m.errors, m.unknown, m.refused, m.connected} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("cannot register MQTT input metrics: %w", err)
			}
		}
	}
	return m, nil
}

// forget removes the series of a device that is no longer configured.
func (m *metrics) forget(device string) {
	l := prometheus.Labels{"device": device}
	m.messages.DeletePartialMatch(l)
	m.readings.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
}

// fail counts every error err carries (one per field) and logs it, at most
// once a minute per device and cause.
func (in *Input) fail(d *Device, topic string, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		cause := Cause(e)
		in.metrics.errors.WithLabelValues(d.ID, cause).Inc()
		if in.logs.every("err:"+d.ID+"\x00"+cause, time.Minute) {
			in.log.Warn("MQTT device message rejected", "device", d.ID, "topic", topic, "cause", cause, "error", e)
		}
	}
}

// logLimiter keeps log lines about misbehaving devices rare. It remembers
// at most logLimit keys; past that it stays quiet.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const logLimit = 1000

func (l *logLimiter) first(key string) bool { return l.every(key, 0) }

// every reports whether key may be logged now: the first time, and again
// after interval when interval > 0.
func (l *logLimiter) every(key string, interval time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	now := time.Now()
	at, seen := l.last[key]
	switch {
	case !seen && len(l.last) >= logLimit:
		return false
	case seen && (interval == 0 || now.Sub(at) < interval):
		return false
	}
	l.last[key] = now
	return true
}
