package main

import (
	"bytes"
	"strings"
	"testing"
)

func endState(produced, dropped, distinct, raw, inserted int64) *tally {
	empty := &Metrics{}
	return &tally{produced: produced, dropped: dropped, inserted: inserted,
		counts: storeCounts{distinct: distinct, final: distinct, raw: raw, rollup: distinct}, edge: empty, cloud: empty}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		name         string
		t            *tally
		ok           bool
		lost, dup    int64
		wantInReport string
	}{
		{"all stored once", endState(100, 0, 100, 100, 100), true, 0, 0, ""},
		{"stored twice, merged", endState(100, 0, 100, 100, 115), true, 0, 15, ""},
		{"stored twice, not merged yet", endState(100, 0, 100, 120, 100), true, 0, 20, ""},
		{"one lost", endState(100, 0, 99, 99, 99), false, 1, 0, "1 readings the edge committed are not stored"},
		{"more than produced", endState(100, 0, 101, 101, 101), false, -1, 0, "1 more readings stored"},
		{"dropped by policy", endState(100, 30, 70, 70, 70), true, 0, 0, "30 readings (edge counter); 30 are missing"},
		{"drop counter overstates", endState(100, 30, 75, 75, 75), true, -5, 0, "overstates the loss by 5"},
		{"more stored than even the drops explain", endState(100, 3, 101, 101, 101), false, -4, 0, "4 more readings stored"},
		{"nothing produced", endState(0, 0, 0, 0, 0), false, 0, 0, "no readings"},
	} {
		r := &Result{Drill: c.name}
		r.judge(c.t)
		if r.OK() != c.ok || r.Lost != c.lost || r.Duplicated != c.dup {
			t.Errorf("%s: ok %t lost %d duplicated %d, want %t %d %d (problems %q)", c.name, r.OK(), r.Lost, r.Duplicated, c.ok, c.lost, c.dup, r.Problems)
		}
		var b bytes.Buffer
		printTable(&b, []*Result{r})
		if !strings.Contains(b.String(), c.wantInReport) {
			t.Errorf("%s: report lacks %q:\n%s", c.name, c.wantInReport, b.String())
		}
		verdict := "ok"
		if !c.ok {
			verdict = "FAIL"
		}
		if first := strings.Split(b.String(), "\n")[1]; !strings.HasPrefix(first, c.name[:min(len(c.name), 20)]) || !strings.HasSuffix(first, verdict) {
			t.Errorf("%s: table line %q", c.name, first)
		}
	}
}

func TestJudgeRollupAndFinal(t *testing.T) {
	st := endState(10, 0, 10, 10, 10)
	st.counts.rollup = 9
	st.counts.final = 11
	r := &Result{}
	r.judge(st)
	got := strings.Join(r.Problems, "\n")
	for _, want := range []string{"roll-up counts 9", "FINAL counts 11 rows for 10"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
}

func TestUncountedDrillFails(t *testing.T) {
	r := &Result{Drill: "x"}
	if r.OK() {
		t.Error("a drill that never counted is ok")
	}
	var b bytes.Buffer
	printTable(&b, []*Result{r})
	if !strings.Contains(b.String(), "-") || !strings.Contains(b.String(), "FAIL") {
		t.Errorf("table:\n%s", b.String())
	}
}
