// Package modbus polls Modbus devices for the edge agent: Modbus TCP,
// RTU on a serial port and RTU over TCP, with read plans built from the
// device templates, per-device intervals, retries and backoff.
package modbus
