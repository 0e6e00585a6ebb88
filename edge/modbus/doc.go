// Package modbus polls the Modbus devices of a plant room for the edge
// agent: Modbus TCP, RTU on a local serial port and RTU over TCP (a
// serial-to-Ethernet converter), through github.com/goburrow/modbus.
//
// # Use
//
//	p, err := modbus.NewPoller(devices, modbus.Options{
//		MaxGap:  modbus.DefaultMaxGap,
//		Sink:    func(rs []protocol.Reading) { /* report filter, then queue.Add */ },
//		OnState: func(id string, online bool, cause error) { /* device_offline / device_online event */ },
//		Log:     log, Registerer: reg,
//	})
//	err = p.Start(ctx)
//	err = p.Update(newDevices) // SIGHUP: only added, removed and changed devices restart
//	stats := p.Stats()         // per device: polls, readings, errors by cause, online, requests per poll
//	p.Stop()
//
// A Device names its template (the register map), its Address, unit id,
// poll interval, request timeout and retries. Addresses (ParseAddress):
//
//	tcp://10.0.0.5:502                 Modbus TCP; port 502 when left out
//	rtuovertcp://10.0.0.6:4001         RTU frames over TCP, through a converter
//	rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1
//	                                   local serial port; parameters default to 9600 8N1
//
// # Read plans
//
// Plan merges a template's points into as few requests as it can: points of
// one register kind at most MaxGap unused registers apart share a request,
// up to 125 registers (2000 bits for coils and discrete inputs). The shipped
// templates need, with the default gap fill of 16: sdm630 2 requests,
// pump-vfd 1, elevator 2, lighting-panel 2 (see plan_test.go). A device that
// refuses a merged read with exception 2 (illegal data address) or 3
// (illegal data value) gets that request split into one request per point
// for as long as it runs, so one unreadable register costs only its own
// point.
//
// # Timing and failures
//
// Each device polls in its own goroutine; a poll starts every PollInterval
// (a poll that overruns skips the missed slots). Requests to one bus take
// turns: a serial port, an RTU-over-TCP address, and a Modbus TCP address
// where a device is marked SingleConnection (its unit ids then share one
// connection). Other Modbus TCP devices have a connection each.
//
// A request without an answer (timeout, connection or frame error, or a
// gateway's exception 10 or 11) is retried Retries times (50 ms, then
// doubling) and then ends the poll: the device's further requests are not
// sent, so a dead device on a shared bus costs that bus one timeout per
// attempt. Any other exception answer is counted (cause "exception_<code>")
// and the poll goes on with the next request.
// A poll in which no request was answered fails; after OfflineAfter (3)
// failed polls in a row the device is reported offline (OnState) and polled
// less often, the interval doubling with every further failure up to
// MaxBackoff (2 min), with its first request only and no retries. The first
// answer brings it back to its interval and is reported (OnState online).
//
// # Values
//
// Points decode by the template: bool (coil, discrete input, a register
// non-zero, or one bit of it), int16, uint16, int32, uint32, float32,
// float64, in the point's byte order (within a register) and word order
// (of the registers); value = raw × scale + offset. A point that decodes
// to NaN or ±Inf, or cannot be decoded, is counted (causes
// "invalid_value", "decode") and gives no reading. The sink gets one slice
// per poll: every point read, timestamp = poll start (ms), quality good.
//
// # Metrics
//
//	plantroom_edge_modbus_points_read_total{device}
//	plantroom_edge_modbus_read_errors_total{device,cause}   timeout, connection, frame, exception_<code>, invalid_value, decode, out_of_range (reading kept, bad quality)
//	plantroom_edge_modbus_device_online{device}
//	plantroom_edge_modbus_requests_per_poll{device}
//	plantroom_edge_modbus_poll_duration_seconds{device}
//
// A removed device's series are deleted.
package modbus
