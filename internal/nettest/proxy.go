package nettest

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Cut modes of a Proxy.
const (
	// CutReset closes every connection and refuses new ones: the far end
	// went away (a broker host rebooting, a firewall sending RSTs).
	CutReset = "reset"
	// CutBlackhole stops forwarding bytes in both directions and accepts
	// new connections without connecting them anywhere: a 4G uplink that
	// drops every packet. Neither end learns of it until its keepalive
	// or timeout fires; bytes held at the cut are delivered on restore,
	// as TCP retransmission would, if both ends still hold the connection.
	CutBlackhole = "blackhole"
	// CutReturn holds every byte from the target back to the client
	// while the client's bytes still flow: the broker gets a publish and
	// its PUBACK never arrives.
	CutReturn = "return"
)

// Proxy is a TCP path on loopback from a local port to a target that a
// test or drill can cut and restore: a broken uplink, an unreachable
// ClickHouse. Every goroutine it starts ends in Close.
type Proxy struct {
	target string
	l      net.Listener

	mu      sync.Mutex
	mode    string        // "" while up, else CutReset or CutBlackhole
	restore chan struct{} // closed when the current cut ends
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	closed  bool
}

// NewProxy forwards a fresh loopback port to target until the test ends.
func NewProxy(t TB, target string) *Proxy {
	t.Helper()
	k, err := ListenProxy(target)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// ListenProxy listens on a fresh loopback port and forwards to target; the
// caller must Close it.
func ListenProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for a proxy to %q: %w", target, err)
	}
	k := &Proxy{target: target, l: l, conns: map[net.Conn]struct{}{}}
	k.wg.Add(1)
	go k.accept()
	return k, nil
}

// Addr is the proxy's local host:port.
func (k *Proxy) Addr() string { return k.l.Addr().String() }

// URL is the proxy's tcp:// URL, for MQTT clients.
func (k *Proxy) URL() string { return "tcp://" + k.Addr() }

// Cut cuts the path in the given mode.
func (k *Proxy) Cut(mode string) {
	k.mu.Lock()
	if k.mode != "" {
		k.mu.Unlock()
		return
	}
	k.mode, k.restore = mode, make(chan struct{})
	var open []net.Conn
	if mode == CutReset {
		for c := range k.conns {
			open = append(open, c)
		}
	}
	k.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// Restore ends the cut: held bytes flow again and new connections reach
// the target.
func (k *Proxy) Restore() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mode == "" {
		return
	}
	k.mode = ""
	close(k.restore)
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (k *Proxy) Close() {
	k.mu.Lock()
	k.closed = true
	var open []net.Conn
	for c := range k.conns {
		open = append(open, c)
	}
	k.mu.Unlock()
	k.Restore()
	k.l.Close()
	for _, c := range open {
		c.Close()
	}
	k.wg.Wait()
}

// gate waits while the proxy holds bytes going this way (toTarget: from
// the client to the target). It reports false when the connection must
// be given up (reset cut or proxy closed).
func (k *Proxy) gate(toTarget bool) bool {
	for {
		k.mu.Lock()
		mode, restore, closed := k.mode, k.restore, k.closed
		k.mu.Unlock()
		switch {
		case closed || mode == CutReset:
			return false
		case mode == "" || (mode == CutReturn && toTarget):
			return true
		}
		<-restore
	}
}

func (k *Proxy) track(cs ...net.Conn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.mode == CutReset {
		return false
	}
	for _, c := range cs {
		k.conns[c] = struct{}{}
	}
	return true
}

func (k *Proxy) untrack(cs ...net.Conn) {
	k.mu.Lock()
	for _, c := range cs {
		delete(k.conns, c)
	}
	k.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (k *Proxy) accept() {
	defer k.wg.Done()
	for {
		c, err := k.l.Accept()
		if err != nil {
			return
		}
		k.wg.Add(1)
		go k.serve(c)
	}
}

func (k *Proxy) serve(in net.Conn) {
	defer k.wg.Done()
	if !k.track(in) {
		in.Close()
		return
	}
	// A connection opened during a blackhole waits for the restore
	// before it reaches the target, like a SYN retransmitted until the
	// path heals; the client's connect timeout decides meanwhile.
	if !k.gate(true) {
		k.untrack(in)
		return
	}
	out, err := net.DialTimeout("tcp", k.target, 5*time.Second)
	if err != nil {
		k.untrack(in)
		return
	}
	if !k.track(out) {
		out.Close()
		k.untrack(in)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); k.pipe(out, in, true) }()
	go func() { defer wg.Done(); k.pipe(in, out, false) }()
	wg.Wait()
	k.untrack(in, out)
}

// pipe copies src to dst through the gate; when either side ends it
// closes both so the other direction ends too.
func (k *Proxy) pipe(dst, src net.Conn, toTarget bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !k.gate(toTarget) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection
		}
	}
}
