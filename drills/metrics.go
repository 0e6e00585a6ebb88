package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a Prometheus text endpoint.
type Metrics struct {
	samples []sample
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads GET http://addr/metrics.
func scrape(ctx context.Context, addr string) (*Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %q: %w", addr, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %q: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %q: HTTP %s", addr, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format (the subset client_golang
// writes: no timestamps, escaped label values).
func parseMetrics(r io.Reader) (*Metrics, error) {
	m := &Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		m.samples = append(m.samples, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read metrics: %w", err)
	}
	return m, nil
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return s, fmt.Errorf("cannot parse metric line %q", line)
	} else {
		s.name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return s, fmt.Errorf("cannot parse labels of metric line %q", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			i := 0
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				val.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return s, fmt.Errorf("cannot parse label %q of metric line %q", key, line)
			}
			s.labels[key] = val.String()
			rest = rest[i+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("cannot parse value of metric line %q", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("cannot parse value of metric line %q: %w", line, err)
	}
	s.value = v
	return s, nil
}

// Sum adds up the series of a metric whose labels include the given
// name/value pairs; a metric without series is 0.
func (m *Metrics) Sum(name string, labels ...string) float64 {
	total := 0.0
	for _, s := range m.samples {
		if s.name != name || !hasLabels(s.labels, labels) {
			continue
		}
		total += s.value
	}
	return total
}

// Has reports whether the scrape holds the metric at all.
func (m *Metrics) Has(name string) bool {
	for _, s := range m.samples {
		if s.name == name {
			return true
		}
	}
	return false
}

// Int is Sum rounded to an integer (counters of readings).
func (m *Metrics) Int(name string, labels ...string) int64 {
	v := m.Sum(name, labels...)
	if v < 0 {
		return int64(v - 0.5)
	}
	return int64(v + 0.5)
}

func hasLabels(have map[string]string, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// Metric names the drills read. Edge agent: edge/agent/metrics.go and
// edge/uplink/metrics.go; cloud: docs/cloud.md.
const (
	mEdgeCommitted    = "plantroom_edge_queue_committed_readings_total"
	mEdgeDropped      = "plantroom_edge_queue_dropped_readings_total"
	mEdgeQueueItems   = "plantroom_edge_queue_items"
	mEdgeQueueBytes   = "plantroom_edge_queue_bytes"
	mEdgeQueueRead    = "plantroom_edge_queue_readings" // {state=live|backlog|inflight}
	mEdgeRejected     = "plantroom_edge_readings_rejected_total"
	mEdgeConnected    = "plantroom_edge_uplink_connected"
	mEdgeResent       = "plantroom_edge_uplink_resent_batches_total"
	mEdgePublished    = "plantroom_edge_uplink_readings_published_total" // {lane=live|backlog}
	mIngestMessages   = "plantroom_ingest_messages_total"                // {kind=telemetry|status|events}
	mIngestReadings   = "plantroom_ingest_readings_total"                // committed, redeliveries included
	mIngestUnacked    = "plantroom_ingest_unacked_messages"
	mIngestConnected  = "plantroom_ingest_mqtt_connected"
	mIngestDupBatches = "plantroom_ingest_duplicate_batches_total"
	mIngestCHErrors   = "plantroom_ingest_clickhouse_errors_total"
	mIngestRejected   = "plantroom_ingest_readings_rejected_total"
	mIngestMsgReject  = "plantroom_ingest_messages_rejected_total"
)
