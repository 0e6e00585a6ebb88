package promtext

import (
	"bufio"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// What client_golang writes is read back series by series, and every key
// of Series is the series' own line in the page.
func TestScrapeReadsWhatClientGolangWrites(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_readings_total", Help: "h"}, []string{"device", "cause"})
	c.WithLabelValues("pump-1", "timeout").Add(3)
	c.WithLabelValues("pump-2", "timeout").Add(4)
	c.WithLabelValues(`odd "name"\`+"\n", "crc").Add(5)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_connected", Help: "h"})
	g.Set(1)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "h", Buckets: []float64{0.1, 1}})
	h.Observe(0.05)
	h.Observe(0.5)
	reg.MustRegister(c, g, h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	m, err := Scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"x_readings_total", nil, 12},
		{"x_readings_total", []string{"cause", "timeout"}, 7},
		{"x_readings_total", []string{"device", "pump-2", "cause", "timeout"}, 4},
		{"x_readings_total", []string{"device", `odd "name"\` + "\n"}, 5},
		{"x_readings_total", []string{"device", "pump-3"}, 0},
		{"x_connected", nil, 1},
		{"x_seconds_count", nil, 2},
		{"x_seconds_sum", nil, 0.55},
		{"x_seconds_bucket", []string{"le", "0.1"}, 1},
		{"x_seconds_bucket", []string{"le", "+Inf"}, 2},
	} {
		if got := m.Sum(tc.name, tc.labels...); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if m.Int("x_readings_total") != 12 || !m.Has("x_connected") || m.Has("x_absent") {
		t.Errorf("Int/Has wrong: %d %v %v", m.Int("x_readings_total"), m.Has("x_connected"), m.Has("x_absent"))
	}

	// Every sample line of the page is a key of Series with its value.
	page := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(page, httptest.NewRequest("GET", "/metrics", nil))
	series := m.Series()
	lines := 0
	sc := bufio.NewScanner(page.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		lines++
		i := strings.LastIndexByte(line, ' ')
		if _, ok := series[line[:i]]; !ok {
			t.Errorf("series %q of the page is not a key of Series", line[:i])
		}
	}
	if lines != len(series) {
		t.Errorf("page has %d series, Series %d", lines, len(series))
	}
}

func TestParseHandWritten(t *testing.T) {
	const text = `# HELP plantroom_edge_queue_readings Readings in the queue.
# TYPE plantroom_edge_queue_readings gauge
plantroom_edge_queue_readings{state="backlog"} 120
plantroom_edge_queue_readings{state="inflight"} 15
plantroom_edge_queue_readings{state="live"} 3
plantroom_edge_queue_committed_readings_total 4.0123e+06
plantroom_ingest_messages_rejected_total{cause="json",note="a \"quoted\", comma"} 2
`
	m, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("plantroom_edge_queue_readings"); got != 138 {
		t.Errorf("queue readings %v, want 138", got)
	}
	if got := m.Int("plantroom_edge_queue_committed_readings_total"); got != 4012300 {
		t.Errorf("committed %v, want 4012300", got)
	}
	if got := m.Sum("plantroom_ingest_messages_rejected_total", "note", `a "quoted", comma`); got != 2 {
		t.Errorf("escaped label: %v, want 2", got)
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	for _, page := range []string{"x_total{a=\"1\" 3\n", "x_total notanumber\n", "# TYPE x counter\nx -\n",
		"novalue\n", "m{a=\"b} 1\n", "m{a=b} 1\n"} {
		if _, err := Parse(strings.NewReader(page)); err == nil {
			t.Errorf("Parse(%q): no error", page)
		}
	}
}
