package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// BenchmarkApply filters one poll of 17 readings (an SDM630) from 100
// devices in turn; values wander inside their deadbands, so most are held
// back.
func BenchmarkApply(b *testing.B) {
	f := NewFilter(5 * time.Minute)
	specs := map[string]Spec{}
	for i := 0; i < 17; i++ {
		specs[fmt.Sprintf("m%d", i)] = Spec{Deadband: 1, Counter: i == 14}
	}
	polls := make([][]protocol.Reading, 100)
	for d := range polls {
		for i := 0; i < 17; i++ {
			polls[d] = append(polls[d], protocol.Reading{Device: fmt.Sprintf("dev-%d", d), Metric: fmt.Sprintf("m%d", i)})
		}
	}
	buf := make([]protocol.Reading, 17)
	n := 0
	for b.Loop() {
		p := polls[n%len(polls)]
		ts := t0 + int64(n)*100
		for i := range p {
			p[i].TS, p[i].Value = ts, float64(n%7)*0.1
		}
		copy(buf, p)
		f.Apply(buf, specs)
		n++
	}
	b.ReportMetric(float64(b.N*17)/b.Elapsed().Seconds(), "readings/s")
}
