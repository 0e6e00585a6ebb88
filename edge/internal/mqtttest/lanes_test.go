package mqtttest

import "testing"

func TestArrivalLanes(t *testing.T) {
	for _, c := range []struct {
		ts   []int64
		want int
	}{
		{nil, 0},
		{[]int64{1, 2, 3}, 1},
		{[]int64{10, 1, 11, 2, 12, 3}, 2},        // live and backlog side by side
		{[]int64{10, 1, 11, 2, 5, 12, 3, 6}, 3},  // and batches re-sent later
		{[]int64{1, 2, 3, 1, 2, 3, 1, 2, 3}, 1},  // a batch re-sent twice is no new lane
		{[]int64{3, 2, 1}, 3},                    // every reading late
		{[]int64{10, 1, 11, 2, 10, 1, 12, 3}, 2}, // re-sent copies of both lanes
	} {
		if got := ArrivalLanes(c.ts); got != c.want {
			t.Errorf("ArrivalLanes(%v) = %d, want %d", c.ts, got, c.want)
		}
	}
}
