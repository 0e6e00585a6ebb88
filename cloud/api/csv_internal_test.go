package api

import (
	"math"
	"testing"
)

func TestCSVCellsAreText(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://evil.example","点我")`: `'=HYPERLINK("http://evil.example","点我")`,
		"+cmd": "'+cmd", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx",
		"-12.5": "-12.5", "翠湖花园": "翠湖花园", "": "",
	} {
		if got := cellText(in); got != want {
			t.Errorf("cellText(%q) = %q, want %q", in, got, want)
		}
	}
	for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		if got := num(v); got != "" {
			t.Errorf("num(%v) = %q, want empty", v, got)
		}
	}
}
