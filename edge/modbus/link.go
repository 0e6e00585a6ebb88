package modbus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/goburrow/modbus"
)

// errFrame marks an answer that cannot be taken apart (bad CRC, wrong
// length, unexpected function code).
var errFrame = errors.New("malformed answer")

// idleClose closes a Modbus TCP connection nobody used for this long.
const idleClose = time.Minute

// link is one connection to a Modbus TCP device or gateway, or one serial
// bus (a local port, or a converter reached over TCP). It sends one request
// at a time: devices sharing a link take turns, each request with its own
// unit id and timeout.
type link struct {
	key  string
	refs int // devices using the link; guarded by the poller's mutex

	mu        sync.Mutex // held for one request
	client    modbus.Client
	setUnit   func(byte)
	setTimout func(time.Duration)
	drop      func() error // closes the connection; the next request reconnects
}

// newLink builds the link for address a; nothing is opened before the first
// request.
func newLink(key string, a Address) *link {
	l := &link{key: key}
	switch a.Transport {
	case TransportTCP:
		h := modbus.NewTCPClientHandler(a.HostPort)
		h.IdleTimeout = idleClose
		l.client = modbus.NewClient(h)
		l.setUnit = func(u byte) { h.SlaveId = u }
		l.setTimout = func(d time.Duration) { h.Timeout = d }
		l.drop = h.Close
	default:
		p := modbus.NewRTUClientHandler("") // used only to build and check RTU frames
		t := &rtuTransporter{}
		if a.Transport == TransportRTU {
			t.open, t.frameGap = openSerial(a), frameGap(a.BaudRate)
		} else {
			t.open = dialStream(a.HostPort)
		}
		l.client = modbus.NewClient2(p, t)
		l.setUnit = func(u byte) { p.SlaveId = u }
		l.setTimout = func(d time.Duration) { t.timeout = d }
		l.drop = t.Close
	}
	return l
}

// read sends request r to unit and returns the answer's payload. After any
// failure other than an exception answer the connection is dropped, so a
// late or half-read answer cannot be taken for the next request's.
func (l *link) read(unit byte, timeout time.Duration, r *Request) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setUnit(unit)
	l.setTimout(timeout)
	var data []byte
	var err error
	switch r.Register {
	case "coil":
		data, err = l.client.ReadCoils(r.Address, r.Count)
	case "discrete":
		data, err = l.client.ReadDiscreteInputs(r.Address, r.Count)
	case "holding":
		data, err = l.client.ReadHoldingRegisters(r.Address, r.Count)
	case "input":
		data, err = l.client.ReadInputRegisters(r.Address, r.Count)
	default:
		return nil, fmt.Errorf("BUG: request of unknown register kind %q", r.Register)
	}
	if err == nil && len(data) != r.responseBytes() {
		err = fmt.Errorf("%w: %d bytes for %s, want %d", errFrame, len(data), r, r.responseBytes())
	}
	if err != nil {
		var me *modbus.ModbusError
		if !errors.As(err, &me) {
			l.drop()
		}
		return nil, err
	}
	return data, nil
}

// close drops the connection for good (the poller no longer uses the link).
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop()
}

// Causes of read errors: the cause label of
// plantroom_edge_modbus_read_errors_total and the keys of
// DeviceStats.Errors. An exception answer is "exception_<code>"
// ("exception_2" for illegal data address).
const (
	CauseTimeout      = "timeout"       // no (complete) answer within the device's timeout
	CauseConnection   = "connection"    // cannot connect, connection refused, reset or closed, serial port failure
	CauseFrame        = "frame"         // malformed answer: CRC, length, transaction or unit id mismatch
	CauseInvalidValue = "invalid_value" // a point reads NaN or ±Inf
	CauseOutOfRange   = "out_of_range"  // a point reads outside its valid range: kept, bad quality
	CauseDecode       = "decode"        // a point cannot be decoded from the answer
)

// exceptionCode returns the code of a Modbus exception answer.
func exceptionCode(err error) (byte, bool) {
	var me *modbus.ModbusError
	if errors.As(err, &me) {
		return me.ExceptionCode, true
	}
	return 0, false
}

// cause names the kind of a read or decode error.
func cause(err error) string {
	if c, ok := exceptionCode(err); ok {
		return fmt.Sprintf("exception_%d", c)
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrOutOfRange):
		return CauseOutOfRange
	case errors.Is(err, ErrInvalidValue):
		return CauseInvalidValue
	case errors.Is(err, ErrDecode):
		return CauseDecode
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	case errors.Is(err, errFrame):
		return CauseFrame
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.As(err, new(*net.OpError)), errors.As(err, new(*os.PathError)), errors.As(err, new(syscall.Errno)):
		return CauseConnection
	}
	return CauseFrame // goburrow reports id and length mismatches as plain errors
}

// transportFailure reports whether err means the device did not answer:
// no answer, or a gateway's exception 10 (gateway path unavailable) or 11
// (gateway target device failed to respond), as opposed to the device
// refusing a request or a bad value.
func transportFailure(err error) bool {
	switch cause(err) {
	case CauseTimeout, CauseConnection, CauseFrame, "exception_10", "exception_11":
		return true
	}
	return false
}
