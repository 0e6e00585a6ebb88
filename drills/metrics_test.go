package main

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP plantroom_edge_queue_readings Readings in the queue.
# TYPE plantroom_edge_queue_readings gauge
plantroom_edge_queue_readings{state="backlog"} 120
plantroom_edge_queue_readings{state="inflight"} 15
plantroom_edge_queue_readings{state="live"} 3
plantroom_edge_queue_committed_readings_total 4.0123e+06
plantroom_ingest_messages_rejected_total{cause="json",note="a \"quoted\", comma"} 2
plantroom_edge_uplink_connected 1
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"plantroom_edge_queue_readings", nil, 138},
		{"plantroom_edge_queue_readings", []string{"state", "inflight"}, 15},
		{"plantroom_edge_queue_committed_readings_total", nil, 4012300},
		{"plantroom_ingest_messages_rejected_total", []string{"note", `a "quoted", comma`}, 2},
		{"plantroom_ingest_messages_rejected_total", []string{"cause", "checksum"}, 0},
		{"plantroom_edge_uplink_connected", nil, 1},
		{"plantroom_not_there", nil, 0},
	} {
		if got := m.Sum(c.name, c.labels...); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if !m.Has("plantroom_edge_uplink_connected") || m.Has("plantroom_not_there") {
		t.Error("Has is wrong")
	}
	if got := m.Int("plantroom_edge_queue_committed_readings_total"); got != 4012300 {
		t.Errorf("Int = %d", got)
	}
}

func TestParseMetricsRejectsGarbage(t *testing.T) {
	for _, line := range []string{"novalue", `m{a="b} 1`, "m{a=b} 1", "m notanumber"} {
		if _, err := parseMetrics(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q parsed without error", line)
		}
	}
}
