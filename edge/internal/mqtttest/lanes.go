package mqtttest

import "sort"

// ArrivalLanes counts the interleaved increasing sequences that the
// timestamps of one device's readings form in their order of arrival (the
// longest strictly decreasing subsequence, by patience sorting). A
// reading that arrives again (a re-sent batch: same timestamp) counts at
// its first arrival only: how often a batch is re-sent depends on the
// machine's speed, the order in which new readings first arrive does not.
// The uplink sends the live lane and the backlog side by side; batches in
// flight or awaiting their commit acknowledgement when the path or the
// broker went away come again later, a third lane.
func ArrivalLanes(ts []int64) int {
	seen := make(map[int64]bool, len(ts))
	var tops []int64
	for _, v := range ts {
		if seen[v] {
			continue
		}
		seen[v] = true
		i := sort.Search(len(tops), func(i int) bool { return tops[i] <= v })
		if i == len(tops) {
			tops = append(tops, v)
		} else {
			tops[i] = v
		}
	}
	return len(tops)
}
