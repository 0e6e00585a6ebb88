package nettest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer answers every line with the same line, on loopback.
func echoServer(t *testing.T) (addr string, received func() []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					mu.Lock()
					got = append(got, sc.Text())
					mu.Unlock()
					if _, err := c.Write([]byte(sc.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func dialProxy(t *testing.T, k *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", k.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyForwardsAndResets(t *testing.T) {
	target, _ := echoServer(t)
	k := NewProxy(t, target)
	c, r := dialProxy(t, k)
	if got, err := roundTrip(t, c, r, "hello", 2*time.Second); err != nil || got != "hello" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	k.Cut(CutReset)
	if _, err := roundTrip(t, c, r, "lost", 2*time.Second); err == nil {
		t.Fatal("a reset proxy still carried a line")
	}
	// New connections are refused (closed at once) while cut.
	c2, r2 := dialProxy(t, k)
	if _, err := roundTrip(t, c2, r2, "refused", 2*time.Second); err == nil {
		t.Fatal("a new connection through a reset proxy worked")
	}
	k.Restore()
	c3, r3 := dialProxy(t, k)
	if got, err := roundTrip(t, c3, r3, "again", 2*time.Second); err != nil || got != "again" {
		t.Fatalf("after restore: %q, %v", got, err)
	}
}

func TestProxyBlackholeHoldsBytes(t *testing.T) {
	target, received := echoServer(t)
	k := NewProxy(t, target)
	c, r := dialProxy(t, k)
	if got, err := roundTrip(t, c, r, "one", 2*time.Second); err != nil || got != "one" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	k.Cut(CutBlackhole)
	_, err := roundTrip(t, c, r, "held", 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a blackholed proxy answered: %v", err)
	}
	if got := received(); len(got) != 1 {
		t.Fatalf("the target got %q during the blackhole", got)
	}
	k.Restore()
	// The held line arrives, as a retransmission would bring it.
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("after restore: %q, %v", line, err)
	}
}

func TestProxyReturnCutDeliversButHoldsAnswers(t *testing.T) {
	target, received := echoServer(t)
	k := NewProxy(t, target)
	c, r := dialProxy(t, k)
	k.Cut(CutReturn)
	if _, err := roundTrip(t, c, r, "publish", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the answer came through a return cut: %v", err)
	}
	waitFor(t, "the target to receive the line", func() bool { return len(received()) == 1 })
	c.Close() // the client dies; its answer is lost with it
	k.Restore()
	c2, r2 := dialProxy(t, k)
	if got, err := roundTrip(t, c2, r2, "next", 2*time.Second); err != nil || got != "next" {
		t.Fatalf("after restore: %q, %v", got, err)
	}
}

func TestProxyCloseEndsConnections(t *testing.T) {
	target, _ := echoServer(t)
	k, err := ListenProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	c, r := dialProxy(t, k)
	if _, err := roundTrip(t, c, r, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	k.Cut(CutBlackhole) // Close must not hang on a held connection
	k.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection after Close: %v", err)
	}
}

// TestPickAddrNeverRepeats: two devices of one test were once given the
// same port by listen-on-":0"-and-close; PickAddr remembers what it gave.
func TestPickAddrNeverRepeats(t *testing.T) {
	addrs, err := PickAddrs(300)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("PickAddrs handed out %s twice", a)
		}
		seen[a] = true
	}
	// Each was free when picked; the first can be listened on now.
	l, err := net.Listen("tcp", addrs[0])
	if err != nil {
		t.Fatalf("cannot listen on the picked %s: %v", addrs[0], err)
	}
	l.Close()
}
