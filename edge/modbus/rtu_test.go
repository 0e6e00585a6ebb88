package modbus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/goburrow/serial"

	"github.com/plantroom/plantroom/config"
)

// frame appends the CRC to an RTU frame body.
func frame(body ...byte) []byte {
	return binary.LittleEndian.AppendUint16(body, crc16(body))
}

func TestReadRTUAnswer(t *testing.T) {
	good := []struct {
		name string
		in   []byte
	}{
		{"read registers", frame(1, 3, 4, 0x43, 0x48, 0x80, 0x00)},
		{"read coils", frame(7, 1, 1, 0b101)},
		{"exception", frame(1, 0x84, 2)},
		{"write single register", frame(1, 6, 0, 5, 1, 0x90)},
	}
	for _, tc := range good {
		// A second frame behind it stays unread.
		got, err := readRTUAnswer(bytes.NewReader(append(tc.in, frame(9, 3, 0)...)))
		if err != nil || !bytes.Equal(got, tc.in) {
			t.Errorf("%s: got % x, %v; want % x", tc.name, got, err, tc.in)
		}
	}
	bad := frame(1, 3, 2, 0, 1)
	bad[len(bad)-1] ^= 0xFF
	for name, in := range map[string][]byte{
		"bad CRC":               bad,
		"unknown function code": frame(1, 0x2B, 0, 0),
	} {
		if _, err := readRTUAnswer(bytes.NewReader(in)); !errors.Is(err, errFrame) {
			t.Errorf("%s: err = %v, want a frame error", name, err)
		}
	}
	if _, err := readRTUAnswer(bytes.NewReader(frame(1, 3, 4, 0, 1)[:5])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated answer: err = %v", err)
	}
}

// TestRTUResync: an answer from the wrong unit (a late one, on a real line)
// fails the request as a frame error and drops the connection, and the
// next request, on a new connection, gets its own answer. The scripted
// converter answers one script step per connection.
func TestRTUResync(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	script := [][]byte{
		frame(2, 3, 2, 0x12, 0x34), // unit 2 answering a request to unit 1
		frame(1, 3, 2, 0x00, 0x2A),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, answer := range script {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			req := make([]byte, 8)
			if _, err := io.ReadFull(c, req); err == nil {
				c.Write(answer)
			}
			// Wait for the client to drop the connection (or read on).
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(req)
			c.Close()
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()

	a, err := ParseAddress("rtuovertcp://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	l := newLink("test", a)
	defer l.close()
	r := &Request{Register: config.RegHolding, Address: 0, Count: 1}
	if _, err := l.read(1, time.Second, r); cause(err) != CauseFrame {
		t.Fatalf("answer from unit 2: err = %v (cause %s), want a frame error", err, cause(err))
	}
	data, err := l.read(1, time.Second, r)
	if err != nil || !bytes.Equal(data, []byte{0x00, 0x2A}) {
		t.Fatalf("after resync: % x, %v", data, err)
	}
}

// fakePort is a serial port that never has data.
type fakePort struct{ reads int }

func (f *fakePort) Read([]byte) (int, error) {
	f.reads++
	time.Sleep(time.Millisecond) // goburrow's read waits its timeout in select
	return 0, serial.ErrTimeout
}
func (f *fakePort) Write(b []byte) (int, error) { return len(b), nil }
func (f *fakePort) Close() error                { return nil }

func TestSerialStreamDeadline(t *testing.T) {
	p := &fakePort{}
	s := &serialStream{port: p}
	s.SetDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := s.Read(make([]byte, 4))
	if !errors.Is(err, os.ErrDeadlineExceeded) || cause(err) != CauseTimeout {
		t.Errorf("read past the deadline: %v", err)
	}
	if p.reads < 2 {
		t.Errorf("the port was read %d times: a per-read timeout must not end the request", p.reads)
	}
}

func TestFrameGap(t *testing.T) {
	if g := frameGap(9600); g < 4*time.Millisecond || g > 4100*time.Microsecond {
		t.Errorf("gap at 9600 baud = %s, want 3.5 × 11 bits ≈ 4.01 ms", g)
	}
	if g := frameGap(115200); g != 1750*time.Microsecond {
		t.Errorf("gap at 115200 baud = %s, want the 1.75 ms floor", g)
	}
}
