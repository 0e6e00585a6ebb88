package modbus

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the poller's Prometheus series, labelled by device. A removed
// device's series are deleted.
type metrics struct {
	pointsRead   *prometheus.CounterVec
	readErrors   *prometheus.CounterVec
	online       *prometheus.GaugeVec
	requests     *prometheus.GaugeVec
	pollDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		pointsRead: f.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_modbus_points_read_total",
			Help: "Readings decoded from Modbus devices.",
		}, []string{"device"}),
		readErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_modbus_read_errors_total",
			Help: "Failed Modbus requests and undecodable points, by cause (timeout, connection, frame, exception_<code>, invalid_value, decode).",
		}, []string{"device", "cause"}),
		online: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plantroom_edge_modbus_device_online",
			Help: "1 while a Modbus device answers, 0 once it is reported offline.",
		}, []string{"device"}),
		requests: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plantroom_edge_modbus_requests_per_poll",
			Help: "Read requests one poll of the device sends.",
		}, []string{"device"}),
		pollDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plantroom_edge_modbus_poll_duration_seconds",
			Help:    "Time one poll of a Modbus device takes, waiting for a shared bus included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"device"}),
	}
}

// forget deletes a device's series.
func (m *metrics) forget(device string) {
	m.pointsRead.DeleteLabelValues(device)
	m.readErrors.DeletePartialMatch(prometheus.Labels{"device": device})
	m.online.DeleteLabelValues(device)
	m.requests.DeleteLabelValues(device)
	m.pollDuration.DeleteLabelValues(device)
}
