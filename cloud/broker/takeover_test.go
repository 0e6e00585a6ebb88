package broker

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A durable subscriber reconnects (its session is taken over by the new
// connection) again and again while a gateway publishes without pause:
// every message still arrives.
func TestSessionTakeoverLosesNothing(t *testing.T) {
	b := startBroker(t, func(c *Config) { c.MaxPending = 100000 })
	var in inbox
	var mu sync.Mutex
	var conn net.Conn
	opts := clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", handler: in.handler}
	dialSub := func() paho.Client {
		c, err := dialWith(t, b.Addr(), opts, func(o *paho.ClientOptions) {
			o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
				c, err := net.Dial("tcp", u.Host)
				mu.Lock()
				conn = c
				mu.Unlock()
				return c, err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	subscribe(t, dialSub(), "plantroom/v2/+/+/+/telemetry")

	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	const total = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			tok := gw.Publish(gardenTelemetry, 1, false, fmt.Sprint(i))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("publish %d: %v", i, tok.Error())
				return
			}
		}
	}()
	// Kill the subscriber's connection and reconnect it, many times, while
	// the messages flow.
	for k := 0; k < 30; k++ {
		waitFor(t, "more messages", func() bool { return in.len() > k*total/40 })
		mu.Lock()
		conn.Close()
		mu.Unlock()
		dialSub()
	}
	<-done
	waitFor(t, fmt.Sprintf("every message (%d of %d so far)", len(in.payloads()), total), func() bool { return len(in.payloads()) == total })
}
