package modbus

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/goburrow/serial"
)

// stream is a byte pipe RTU frames travel on: a TCP connection to a
// serial-to-Ethernet converter or a local serial port.
type stream interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// rtuTransporter carries RTU frames (unit id, PDU, CRC-16) over a stream.
// It implements goburrow's modbus.Transporter, so goburrow's RTU packager
// builds and checks the frames (NewClient2). goburrow's own RTU transport
// speaks only to serial ports with one fixed timeout; this one takes a
// timeout per request, works over TCP too, and drops the stream after any
// failure, so a late answer can never be taken for the next request's.
//
// It is not safe for concurrent use: the link serialises requests.
type rtuTransporter struct {
	open     func(timeout time.Duration) (stream, error)
	timeout  time.Duration // per request, set by the link
	frameGap time.Duration // silence the line needs between frames
	s        stream
	lastIO   time.Time
}

// Send writes one request frame and reads the answer frame.
func (t *rtuTransporter) Send(adu []byte) ([]byte, error) {
	if t.s == nil {
		s, err := t.open(t.timeout)
		if err != nil {
			return nil, err
		}
		t.s = s
	}
	if wait := t.frameGap - time.Since(t.lastIO); wait > 0 {
		time.Sleep(wait) // inter-frame silence of the RTU line (3.5 character times)
	}
	defer func() { t.lastIO = time.Now() }()
	if err := t.s.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		t.Close()
		return nil, err
	}
	if _, err := t.s.Write(adu); err != nil {
		t.Close()
		return nil, err
	}
	resp, err := readRTUAnswer(t.s)
	if err != nil {
		t.Close()
		return nil, err
	}
	return resp, nil
}

// Close drops the stream; the next Send opens a new one.
func (t *rtuTransporter) Close() error {
	if t.s == nil {
		return nil
	}
	err := t.s.Close()
	t.s = nil
	return err
}

// readRTUAnswer reads one answer frame; its length follows from the
// function code (and the byte count of a read answer).
func readRTUAnswer(r io.Reader) ([]byte, error) {
	buf := make([]byte, 3, 256)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	var rest int
	switch fc := buf[1]; {
	case fc&0x80 != 0:
		rest = 2 // exception code already read; CRC
	case fc >= 1 && fc <= 4:
		rest = int(buf[2]) + 2 // byte count, data, CRC
	case fc == 5 || fc == 6 || fc == 15 || fc == 16:
		rest = 5 // address, value or quantity (first byte read), CRC
	default:
		return nil, fmt.Errorf("%w: unexpected function code %d in RTU answer", errFrame, fc)
	}
	buf = buf[:3+rest]
	if _, err := io.ReadFull(r, buf[3:]); err != nil {
		return nil, err
	}
	if got, want := binary.LittleEndian.Uint16(buf[len(buf)-2:]), crc16(buf[:len(buf)-2]); got != want {
		return nil, fmt.Errorf("%w: RTU answer CRC %#04x, want %#04x", errFrame, got, want)
	}
	return buf, nil
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001 reflected, initial 0xFFFF),
// sent low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// dialStream opens a TCP stream to a serial-to-Ethernet converter.
func dialStream(hostPort string) func(time.Duration) (stream, error) {
	return func(timeout time.Duration) (stream, error) {
		c, err := net.DialTimeout("tcp", hostPort, timeout)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// serialPoll is how long one read of the serial port waits before the
// stream checks its deadline again.
const serialPoll = 20 * time.Millisecond

// openSerial opens a local serial port with a's line settings.
func openSerial(a Address) func(time.Duration) (stream, error) {
	return func(time.Duration) (stream, error) {
		p, err := serial.Open(&serial.Config{Address: a.Port, BaudRate: a.BaudRate, DataBits: a.DataBits,
			StopBits: a.StopBits, Parity: a.Parity, Timeout: serialPoll})
		if err != nil {
			return nil, fmt.Errorf("cannot open serial port %q: %w", a.Port, err)
		}
		return &serialStream{port: p}, nil
	}
}

// serialStream gives a serial port a read deadline: goburrow/serial knows
// only a timeout per read, fixed when the port opens.
type serialStream struct {
	port     io.ReadWriteCloser
	deadline time.Time
}

func (s *serialStream) Read(b []byte) (int, error) {
	for {
		n, err := s.port.Read(b)
		if n > 0 || (err != nil && err != serial.ErrTimeout) {
			return n, err
		}
		if !s.deadline.IsZero() && !time.Now().Before(s.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (s *serialStream) Write(b []byte) (int, error) { return s.port.Write(b) }
func (s *serialStream) Close() error                { return s.port.Close() }

func (s *serialStream) SetDeadline(t time.Time) error {
	s.deadline = t
	return nil
}

// frameGap is the silence an RTU line needs between frames: 3.5 character
// times of 11 bits, at least 1.75 ms above 19200 baud (Modbus over serial
// line v1.02, 2.5.1.1).
func frameGap(baud int) time.Duration {
	if baud <= 0 || baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * 11 * float64(time.Second) / float64(baud))
}
