// Package report decides which readings the edge agent sends: report by
// exception. The Modbus poller reads every point every poll and the MQTT
// input takes every message; most of those values have not changed, and
// sending them all would cost the uplink and the cloud for nothing. A
// Filter lets a reading through when it says something new:
//
//   - the first value of a (device, metric), after start or ResetDevice;
//   - a change of at least the metric's deadband (Point.Deadband or
//     MQTTField.Deadband in the template; 0 means any change), measured
//     from the last value sent, so slow drift is sent once it adds up;
//   - any change of a counter (Counter in the template), however small:
//     counters are never swallowed by a deadband, so each increment, reset
//     or rollover reaches the cloud the poll it is seen, and energy is
//     priced in the tariff period it was used in;
//   - any change of a state or flag (coded values and bools have no
//     deadband);
//   - a change of quality, or a timestamp older than the last sent one
//     (the clock was set back);
//   - an unchanged value once the heartbeat has passed since it was last
//     sent (DefaultHeartbeat 5 min; measured in reading time), so the
//     cloud can tell a steady value from a silent device.
//
// The agent uses one Filter for all devices:
//
//	f := report.NewFilter(cfg.Heartbeat)
//	specs := report.Specs(template)          // per device, from its template
//	queue.Add(f.Apply(readings, specs))      // in the poller's or MQTT input's sink
//	f.ResetDevice(id)                        // device reconfigured or back online
//	f.Retain(func(id string) bool { return configured[id] })  // after a reload
//
// Memory: one entry per (device, metric) let through; Apply remembers only
// metrics that have a spec, and ResetDevice and Retain drop devices.
package report
