package broker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	denied      *prometheus.CounterVec
	held        prometheus.Counter
	heldSeconds prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_broker_denied_total",
			Help: "Connections, publishes and subscriptions the broker refused, by reason.",
		}, []string{"reason"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_broker_publishes_held_total",
			Help: "Publishes held back because a durable subscriber (the ingest) had too many unacknowledged messages.",
		}),
		heldSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plantroom_broker_publishes_held_seconds_total",
			Help: "Time publishers spent held back by a slow durable subscriber.",
		}),
	}
	for _, r := range []string{DenyCredentials, DenyClientID, DenyWill, DenyPublish, DenySubscribe} {
		m.denied.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.denied, m.held, m.heldSeconds)
	}
	return m
}
