package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Result is one drill's outcome.
type Result struct {
	Drill      string
	Produced   int64 // readings the edge agent committed to its queue (every run)
	Stored     int64 // distinct (device, metric, ts_ms) in ClickHouse
	Dropped    int64 // deleted by the edge queue's overflow policy (its own counter)
	Lost       int64 // Produced − Dropped − Stored
	Duplicated int64 // rows stored more than once and not merged yet (count() − distinct)
	Elapsed    time.Duration
	Dir        string // kept stand directory, if any
	// InFlightAtCut is the readings of batches sent but not acknowledged
	// when the uplink was cut (disk-bound).
	InFlightAtCut int64

	Err      error    // the drill could not run to its end
	Problems []string // what went wrong
	Notes    []string // what happened
	counted  bool
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// OK reports whether the drill ran to its end without a problem.
func (r *Result) OK() bool { return r.Err == nil && len(r.Problems) == 0 && r.counted }

// judge fills the figures from the end state and records every
// discrepancy.
func (r *Result) judge(t *tally) {
	r.counted = true
	c := t.counts
	r.Produced, r.Dropped, r.Stored = t.produced, t.dropped, c.distinct
	r.Lost = t.produced - t.dropped - c.distinct
	// Duplicates merge away at no known time, so count() − distinct shows
	// only those not merged yet; the ingest's own count of committed
	// readings shows every one it inserted twice.
	r.Duplicated = max(c.raw-c.distinct, t.inserted-c.distinct)
	switch {
	case r.Lost > 0:
		r.problem("%d readings the edge committed are not stored", r.Lost)
	case r.Lost < 0 && -r.Lost <= t.dropped:
		// Readings the queue dropped while their batch was in flight
		// (sent, PUBACK not yet applied) may have reached the cloud: the
		// drop counter then overstates what is missing.
		r.note("the drop counter overstates the loss by %d: readings dropped while their batch was sent and not yet acknowledged as committed had reached the cloud",
			-r.Lost)
		if r.InFlightAtCut > 0 {
			r.note("%d readings were in flight when the uplink was cut", r.InFlightAtCut)
		}
	case r.Lost < 0:
		r.problem("%d more readings stored than the edge committed (less its drops)", -r.Lost)
	}
	if c.final != c.distinct {
		r.problem("readings FINAL counts %d rows for %d distinct readings", c.final, c.distinct)
	}
	if c.rollup != c.distinct {
		r.problem("the hourly roll-up counts %d readings, readings holds %d", c.rollup, c.distinct)
	}
	if r.Produced == 0 {
		r.problem("the edge committed no readings")
	}
	if r.Dropped > 0 {
		r.note("the queue bound dropped %d readings (edge counter); %d are missing from storage, lost by policy",
			r.Dropped, t.produced-c.distinct)
	}
	if n := t.edge.Int(mEdgeResent); n > 0 {
		r.note("edge re-sent %d batches", n)
	}
	if n := t.cloud.Int(mIngestDupBatches); n > 0 {
		r.note("ingest skipped %d re-delivered batches", n)
	}
	if n := t.cloud.Int(mIngestRejected) + t.cloud.Int(mIngestMsgReject); n > 0 {
		r.problem("the ingest rejected %d readings/messages", n)
	}
	if n := t.edge.Int(mEdgeRejected); n > 0 {
		r.problem("the edge queue refused %d readings", n)
	}
}

// judgeEnergy records the report comparison.
func (r *Result) judgeEnergy(e *energyCheck) {
	for _, p := range e.problems() {
		r.problem("%s", p)
	}
	var parts []string
	if e.submetered {
		parts = append(parts, fmt.Sprintf("daily report %.3f kWh vs readings %.3f kWh", e.api, round3(e.direct)))
	}
	if e.monthly != nil {
		total := 0.0
		for _, v := range e.devices {
			total += v
		}
		parts = append(parts, fmt.Sprintf("monthly report per device vs readings over %d devices (%.3f kWh)", len(e.devices), total))
	}
	r.note("energy: %s", strings.Join(parts, "; "))
}

const tableHeader = "%-20s %9s %9s %6s %11s  %s\n"

// printTable writes one line per drill, then what happened in each.
func printTable(w io.Writer, results []*Result) {
	fmt.Fprintf(w, tableHeader, "drill", "produced", "stored", "lost", "duplicated", "result")
	for _, r := range results {
		verdict := "ok"
		if !r.OK() {
			verdict = "FAIL"
		}
		num := func(v int64) string {
			if !r.counted {
				return "-"
			}
			return fmt.Sprint(v)
		}
		fmt.Fprintf(w, tableHeader, r.Drill, num(r.Produced), num(r.Stored), num(r.Lost), num(r.Duplicated), verdict)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%s (%s):\n", r.Drill, r.Elapsed.Round(time.Second))
		if r.Err != nil {
			fmt.Fprintf(w, "  ERROR %s\n", strings.ReplaceAll(r.Err.Error(), "\n", "\n        "))
		}
		probs := append([]string(nil), r.Problems...)
		sort.Strings(probs)
		for _, p := range probs {
			fmt.Fprintf(w, "  FAIL  %s\n", p)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
		if r.Dir != "" {
			fmt.Fprintf(w, "  configs and logs kept in %s\n", r.Dir)
		}
	}
}
