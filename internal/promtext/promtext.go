// Package promtext reads a Prometheus /metrics page into samples, with the
// Prometheus text parser (prometheus/common/expfmt), for the drills, the
// load harnesses and the tests that look at what a process exports. It is
// the one place the project parses the exposition format.
package promtext

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one series of a scrape: histograms and summaries appear as
// their _bucket, _sum and _count series, as Prometheus stores them.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is one scrape.
type Metrics struct {
	Samples []Sample
}

// Parse reads the text exposition format.
func Parse(r io.Reader) (*Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("cannot parse metrics: %w", err)
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, sortedFamilies(fams)...)
	if err != nil {
		return nil, fmt.Errorf("cannot parse metrics: %w", err)
	}
	m := &Metrics{Samples: make([]Sample, 0, len(vec))}
	for _, s := range vec {
		x := Sample{Labels: make(map[string]string, len(s.Metric)), Value: float64(s.Value)}
		for k, v := range s.Metric {
			if k == model.MetricNameLabel {
				x.Name = string(v)
				continue
			}
			x.Labels[string(k)] = string(v)
		}
		m.Samples = append(m.Samples, x)
	}
	return m, nil
}

func sortedFamilies(fams map[string]*dto.MetricFamily) []*dto.MetricFamily {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*dto.MetricFamily, len(names))
	for i, n := range names {
		out[i] = fams[n]
	}
	return out
}

var client = &http.Client{Timeout: 5 * time.Second}

// Scrape reads GET url (e.g. http://127.0.0.1:9102/metrics).
func Scrape(ctx context.Context, url string) (*Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %q: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %q: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %q: HTTP %s", url, resp.Status)
	}
	m, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %q: %w", url, err)
	}
	return m, nil
}

// Sum adds up the series of a metric whose labels include the given
// name/value pairs; a metric without series is 0.
func (m *Metrics) Sum(name string, labels ...string) float64 {
	total := 0.0
	for _, s := range m.Samples {
		if s.Name == name && s.has(labels) {
			total += s.Value
		}
	}
	return total
}

// Int is Sum rounded to the nearest integer (counters of readings).
func (m *Metrics) Int(name string, labels ...string) int64 {
	return int64(math.Round(m.Sum(name, labels...)))
}

// Has reports whether the scrape holds the metric at all.
func (m *Metrics) Has(name string) bool {
	for _, s := range m.Samples {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Series maps every series, written `name{a="x",b="y"}` (labels sorted,
// values escaped as the text format escapes them; a series without labels
// is just its name), to its value.
func (m *Metrics) Series() map[string]float64 {
	out := make(map[string]float64, len(m.Samples))
	for _, s := range m.Samples {
		out[s.Key()] = s.Value
	}
	return out
}

// Key is the series written as Series writes it.
func (s Sample) Key() string {
	if len(s.Labels) == 0 {
		return s.Name
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(escaper.Replace(s.Labels[k]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func (s Sample) has(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if s.Labels[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}
