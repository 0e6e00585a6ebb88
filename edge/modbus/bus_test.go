package modbus

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// rtuBus is an RS-485 line behind a serial-to-Ethernet converter, for
// tests: the converter's TCP port carries RTU frames to several slaves,
// each of them a simulated device served RTU over TCP on its own port.
// A request frame goes to the slave with its unit id; answers come back in
// whole frames as the slaves send them, late ones included, as on a real
// line. A unit nobody answers to stays silent. Only read requests (8-byte
// frames, functions 1–4) are carried.
type rtuBus struct {
	ln    net.Listener
	units map[byte]string // unit id → slave address
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startBus(t testing.TB, units map[byte]string) *rtuBus {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rtuBus{ln: ln, units: units, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *rtuBus) addr() string { return b.ln.Addr().String() }

func (b *rtuBus) track(c net.Conn, on bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !on {
		delete(b.conns, c)
		return true
	}
	if b.conns == nil {
		return false // closed
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *rtuBus) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *rtuBus) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c, true) {
			c.Close()
			return
		}
		b.wg.Add(1)
		go b.serve(c)
	}
}

// serve carries one converter connection: requests out to the slaves,
// answers back.
func (b *rtuBus) serve(c net.Conn) {
	defer b.wg.Done()
	var wmu sync.Mutex // one answer frame at a time on the way back
	slaves := map[byte]net.Conn{}
	defer func() {
		for _, s := range slaves {
			s.Close()
		}
		c.Close()
		b.track(c, false)
	}()
	for {
		frame := make([]byte, 8)
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		unit := frame[0]
		s := slaves[unit]
		if s == nil {
			addr, ok := b.units[unit]
			if !ok {
				continue // nobody on the line answers
			}
			var err error
			if s, err = net.DialTimeout("tcp", addr, time.Second); err != nil {
				continue // the slave is dead: silence
			}
			slaves[unit] = s
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				for {
					ans, err := readRTUAnswer(s)
					if err != nil {
						return
					}
					wmu.Lock()
					c.Write(ans)
					wmu.Unlock()
				}
			}()
		}
		if _, err := s.Write(frame); err != nil {
			s.Close()
			delete(slaves, unit)
		}
	}
}
